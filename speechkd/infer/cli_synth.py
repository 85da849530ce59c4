"""``speechkd synth``: text -> wav with a trained acoustic model and a vocoder.

    speechkd synth --model exp/fastspeech2 "The goat butted the hiker." -o goat.wav
    echo "One sentence per line." | speechkd synth --model exp/fastspeech2 -d out/
    speechkd synth --model exp/fastspeech2 -i sentences.txt -d out/          # one utterance per line
    speechkd synth --model exp/fastspeech2 --list data/test/text -d exp/fastspeech2/synth/test
    speechkd synth --model exp/fastspeech2 --vocoder exp/vocoder_vocos --speed 1.2 --pitch-scale 1.1 ...
    speechkd synth --model exp/fastspeech2 --list-speakers                      # a multi-speaker model's voices
    speechkd synth --model exp/fastspeech2 --speaker awb "Hello there." -o hello.wav
    speechkd synth --model exp/fastspeech2 --list data/test/text --utt2spk data/test/utt2spk -d out/
    speechkd synth --systems exp/systems.tsv --systems-from exp --data-dir data/test --feats dump/feats/test \
        --num-utts 50 --on-unknown map       # recipe stage 10: every system of the exp dir

``--systems FILE`` synthesises every system of a systems manifest (:mod:`speechkd.infer.systems`)
into its ``exp/<name>/synth/<test set>``: copy synthesis of ``--feats`` (Griffin-Lim, each trained
vocoder), WORLD resynthesis of the ``--data-dir`` audio, and the ``--data-dir``'s ``text`` spoken by
every acoustic model with each vocoder. With ``--systems-from EXP`` the manifest is first written
from what EXP holds (the test set is named by the data dir). Wavs already there are kept.

Input (one of): each TEXT argument is one utterance (quote sentences); ``-i FILE`` one utterance
per non-empty line (``-i -``: stdin); ``--list FILE`` lines ``id|text`` or a Kaldi ``text`` file
(``id text``), the format told by each line's first field; with none of these, stdin is read
like ``-i -``. Ids of unnamed utterances are utt0001, utt0002, ...

Output: ``-o out.wav`` (exactly one utterance) or ``-d DIR``: ``DIR/<id>.wav`` and
``DIR/manifest.tsv`` (id, text, path, seconds of audio, synth_seconds: wall time of the batch
that made it, batch_size, stopped, speaker). Wavs are written atomically (16-bit PCM).

A multi-speaker model needs a voice: ``--speaker ID`` for every utterance, or ``--utt2spk FILE``
(Kaldi ``<utt> <speaker>``) for one per utterance id; without either it refuses, listing its
speakers. In ``--systems`` mode every utterance is spoken by its own speaker (the data dir's
``utt2spk``). Single-speaker models ignore both options.

``--speed 2.0`` speaks twice as fast (every duration halved), 0.5 half as fast; ``--pitch-scale``
and ``--energy-scale`` multiply the predicted pitch and energy. Models that lack a control refuse
it (the autoregressive teacher takes none of them; FastSpeech takes --speed).

Bad input (empty text, a symbol outside the model's token list, a missing or half-written exp
dir, an unwritable output path, mismatched acoustic-model and vocoder features) is a one-line
error and exit status 2. In a batch, one bad line does not stop the others: the good ones are
written, each bad one is reported on stderr and in ``DIR/failures.tsv`` (id, line, error), and
the exit status is 1; only when every line fails is it 2.
"""

from __future__ import annotations

import argparse
import csv
import io
import logging
import os
import sys
import tempfile
import time
from typing import Callable

from speechkd.errors import SpeechkdError
from speechkd.features.config import FeatureConfig
from speechkd.infer.systems import list_systems, read_manifest, write_manifest
from speechkd.runtime.bundle import is_exported_dir
from speechkd.utils import args as av
from speechkd.utils.io import atomic_write_text, atomic_write_wav
from speechkd.utils.paths import id_problem, safe_child

logger = logging.getLogger(__name__)

MANIFEST = "manifest.tsv"
FAILURES = "failures.tsv"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("text", nargs="*", metavar="TEXT", help="utterances to speak, one per argument (quote them)")
    p.add_argument("--model", type=av.model_ref,
                   help="acoustic model exp dir (exp/teacher_ar, exp/fastspeech2, ...), a .ckpt, an exported dir, "
                        "or builtin:piper (the Piper peer, when installed)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("-i", "--input", type=av.text_file,
                     metavar="FILE", help="text file, one utterance per non-empty line; - = stdin")
    src.add_argument("--list", type=av.text_file,
                     metavar="FILE", help="lines 'id|text', or a Kaldi text file ('id text')")
    out = p.add_mutually_exclusive_group()
    out.add_argument("-o", "--output", type=av.output_file,
                     metavar="WAV", help="write the (single) utterance to this wav")
    out.add_argument("-d", "--out-dir", type=av.output_dir,
                     metavar="DIR", help="write DIR/<id>.wav and DIR/manifest.tsv")
    p.add_argument("--num-utts", type=av.nonneg_int, default=0, help="only the first N utterances; 0 = all")
    p.add_argument("--vocoder", type=av.nonempty_str, default="griffin_lim",
                   help="a registered vocoder name (griffin_lim, hifigan_universal, hifigan_ljspeech) or a trained "
                        "vocoder's exp dir")
    p.add_argument("--speed", type=av.finite_float(0.1, 10),
                   default=1.0, help="speaking rate: 2.0 = twice as fast (durations "
                                                            "halved), 0.5 = twice as slow")
    p.add_argument("--pitch-scale", type=av.finite_float(0, 10),
                   default=1.0, help="multiply the predicted F0 (variance-adaptor "
                                                                  "models only)")
    p.add_argument("--energy-scale", type=av.finite_float(0, 10), default=1.0, help="multiply the predicted energy "
                                                                   "(variance-adaptor models only)")
    p.add_argument("--on-unknown", choices=["error", "map"], default="error",
                   help="symbols outside the model's token list: error (name them), or map to <unk>")
    p.add_argument("--frontend", type=av.text_file,
                   default=None, help="frontend.yaml to use when the checkpoint holds none")
    p.add_argument("--device", type=av.device, default="auto", help="auto (CUDA when present), cpu, cuda")
    p.add_argument("--seed", type=av.seed, default=0, help="seed of every random choice (the AR teacher's "
                                                       "prenet dropout, Griffin-Lim's initial phase, ...)")
    p.add_argument("--batch-size", type=av.int_range(1, 4096),
                   default=1, help="utterances per forward pass (sorted by length)")
    p.add_argument("--steps", type=av.nonneg_int, default=0, help="diffusion models: sampler steps, a divisor of the "
                                                        "model's own N (0 = its own N)")
    p.add_argument("--threads", type=av.threads, default=0, help="torch CPU threads; 0 = torch's default")
    p.add_argument("--average", type=av.positive_int, default=1, help="average the weights of the model's last N "
                                                          "checkpoints (keep them: trainer.keep_checkpoints)")
    p.add_argument("--speaker", type=av.nonempty_str, default=None,
                   help="multi-speaker models: the voice of every utterance (--list-speakers shows them)")
    p.add_argument("--utt2spk", type=av.text_file, default=None,
                   help="multi-speaker models: '<utt> <speaker>' lines, a voice per utterance id (with --list)")
    p.add_argument("--list-speakers", action="store_true", help="print the model's speakers and exit")
    g = p.add_argument_group("every system of a systems manifest (instead of --model)")
    g.add_argument("--systems", type=av.nonempty_str, metavar="FILE", help="systems manifest (TSV, speechkd.infer.systems) to synthesise")
    g.add_argument("--systems-from", type=av.existing_dir, metavar="EXP", help="first write --systems from the models and vocoders "
                                                         "trained in this exp dir")
    g.add_argument("--diffusion-steps", type=av.positive_int, default=8, help="with --systems-from: N of the diffusion "
                                                                  "teacher exp/diffusion_<N> (default %(default)s)")
    g.add_argument("--data-dir", type=av.existing_dir, help="test data dir: its text is spoken, its audio resynthesised by WORLD")
    g.add_argument("--feats", type=av.existing_dir, help="feature dump of --data-dir: the ground-truth mels of copy synthesis")
    g.add_argument("--nj", type=av.jobs, default=1, help="WORLD resynthesis: processes (default %(default)s)")


# ---- input ---------------------------------------------------------------------------------------
def read_lines(path: str) -> list[str]:
    if path == "-":
        return sys.stdin.read().splitlines()
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().splitlines()
    except FileNotFoundError:
        raise SpeechkdError("input file does not exist", path=path) from None
    except UnicodeDecodeError as e:
        raise SpeechkdError(f"not UTF-8 text (byte {e.start})", path=path, hint="convert it to UTF-8") from None
    except OSError as e:
        raise SpeechkdError(f"cannot read input ({e.strerror})", path=path) from None


def parse_list(lines: list[str], path: str = "<list>") -> list[tuple[str, str, int]]:
    """``(id, text, line number)`` of ``id|text`` or Kaldi ``id text`` lines (blank lines skipped).
    A line whose first whitespace-separated field holds '|' is ``id|text``; a line of just an id
    gives an empty text (reported as that utterance's failure). Duplicate ids are an error."""
    out, seen = [], {}
    for n, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line:
            continue
        first = line.split(maxsplit=1)[0]
        if "|" in first:
            utt, text = (s.strip() for s in line.split("|", 1))
        else:
            utt, _, text = line.partition(" ") if " " in line else (line, "", "")
            utt, text = utt.strip(), text.strip()
        if not utt:
            raise SpeechkdError(f"line {n}: empty utterance id", path=path, hint="lines are 'id|text' or 'id text'")
        if utt in seen:
            raise SpeechkdError(f"line {n}: utterance id '{utt}' already on line {seen[utt]}", path=path,
                                hint="ids name the output wavs and must be unique")
        seen[utt] = n
        out.append((utt, text, n))
    return out


def collect_inputs(args: argparse.Namespace) -> list[tuple[str, str, int]]:
    """``(id, text, line)`` of every utterance asked for (line 0 for command-line arguments)."""
    if args.text and (args.input or args.list):
        raise SpeechkdError("give the text either as arguments or with -i/--list, not both")
    if args.list:
        items = parse_list(read_lines(args.list), args.list)
    else:
        if args.text:
            texts = [(t, 0) for t in args.text]
        else:
            if not args.input and sys.stdin.isatty():
                raise SpeechkdError("no text given", hint="pass TEXT arguments, -i FILE, --list FILE or pipe "
                                                          "text into stdin")
            texts = [(ln, n) for n, ln in enumerate(read_lines(args.input or "-"), 1) if ln.strip()]
        width = max(4, len(str(len(texts))))
        items = [(f"utt{i + 1:0{width}d}", t, n) for i, (t, n) in enumerate(texts)]
    if args.num_utts > 0:
        items = items[:args.num_utts]
    if not items:
        raise SpeechkdError("no text given (the input holds no non-empty line)", path=args.list or args.input,
                            hint="give at least one sentence")
    return items


# ---- output --------------------------------------------------------------------------------------
def check_writable(args: argparse.Namespace, n: int) -> str:
    """The output dir, created and checked before any work (an unwritable path fails fast)."""
    if not args.output and not args.out_dir:
        raise SpeechkdError("no output given", hint="pass -o out.wav (one utterance) or -d DIR")
    if args.output:
        if n != 1:
            raise SpeechkdError(f"-o writes one utterance, but {n} were given", field="-o",
                                hint="use -d DIR for several (or quote the sentence: one argument)")
        if os.path.isdir(args.output):
            raise SpeechkdError("-o names a directory", path=args.output, hint="give a .wav path, or use -d")
        where = os.path.dirname(os.path.abspath(args.output))
    else:
        where = os.path.abspath(args.out_dir)
    try:
        os.makedirs(where, exist_ok=True)
    except OSError as e:
        raise SpeechkdError(f"cannot create the output directory ({e.strerror})", path=where,
                            hint="choose a writable location") from None
    try:  # a real probe: os.access says yes to root, also on read-only mounts and /proc
        fd, probe = tempfile.mkstemp(prefix=".speechkd_synth.", dir=where)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise SpeechkdError(f"output directory is not writable ({e.strerror})", path=where,
                            hint="choose a writable location") from None
    return where


def wav_writer(args: argparse.Namespace, out_dir: str, sample_rate: int) -> Callable:
    """``on_done`` of a synthesis batch: each good utterance to ``-o`` or ``DIR/<id>.wav`` (atomically)."""
    def write(r) -> None:
        if r.wav is None:
            return
        path = args.output or safe_child(out_dir or ".", r.utt, ".wav", source=args.list)
        try:
            atomic_write_wav(path, r.wav, sample_rate)
        except OSError as e:
            raise SpeechkdError(f"cannot write the wav ({e.strerror})", path=path,
                                hint="choose a writable location") from None
        r.path = path

    return write


def check_ids(args: argparse.Namespace, items: list[tuple[str, str, int]]) -> None:
    """With ``-d DIR`` every id names ``DIR/<id>.wav``: one that cannot (a path, '..', ...) is an error."""
    bad_ids = [(u, n) for u, _, n in items if id_problem(u)]
    if bad_ids and not args.output:
        raise SpeechkdError("utterance id(s) cannot name a file: " + "; ".join(
            f"line {n}: {u!r} ({id_problem(u)})" for u, n in bad_ids[:5]), path=args.list, hint="rename them")


def refuse_options(args: argparse.Namespace, flags: tuple[str, ...], what: str, path: str | None = None) -> None:
    """One error line for the first of ``flags`` given a value other than its default (that of
    :func:`add_arguments`): it does not apply to ``what``."""
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    for flag in flags:
        dest = flag.lstrip("-").replace("-", "_")
        if getattr(args, dest) != parser.get_default(dest):
            raise SpeechkdError(f"{flag} does not apply to {what}", field=flag, path=path, hint=f"leave out {flag}")


def _tsv(rows: list[list[str]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, delimiter="\t", lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
    w.writerows(rows)
    return buf.getvalue()


def main(args: argparse.Namespace) -> int:
    if args.systems:
        return synth_systems(args)
    for flag in ("systems_from", "data_dir", "feats"):
        if getattr(args, flag):
            raise SpeechkdError(f"--{flag.replace('_', '-')} goes with --systems FILE", field="--systems")
    if not args.model:
        raise SpeechkdError("no model given", field="--model",
                            hint="--model exp/<model> (a trained exp dir), or --systems FILE for a manifest")
    if args.model.startswith("builtin:"):
        return synth_builtin(args)
    if is_exported_dir(args.model):  # `speechkd export` output: onnxruntime and numpy, torch never imported
        return synth_exported(args)
    if args.list_speakers:
        return list_speakers(args.model)
    return synth_model(args)


def synth_builtin(args: argparse.Namespace) -> int:
    """Text -> wavs with a peer system (``builtin:piper``), for scoring it beside the students."""
    # why: the peer is optional and torch-free; loaded only when asked for
    from speechkd.runtime.piper import NAME, require_piper

    if args.model != NAME:
        raise SpeechkdError(f"unknown built-in model '{args.model}'", field="--model", hint=f"the built-in is {NAME}")
    refuse_options(args, ("--steps", "--average", "--frontend", "--vocoder", "--speed", "--pitch-scale",
                          "--energy-scale", "--speaker", "--utt2spk", "--batch-size"),
                   f"{NAME} (its voice, frontend and vocoder are its own)")
    if args.list_speakers:
        print(f"{NAME}: a single-speaker voice (no --speaker needed)", file=sys.stderr)
        return 0
    items = collect_inputs(args)
    check_writable(args, len(items))
    check_ids(args, items)
    peer = require_piper(args.threads)
    logger.info("%s: %s", NAME, peer.describe())
    out_dir = args.out_dir or ""
    results = peer.batch([t for _, t, _ in items], [u for u, _, _ in items],
                         on_done=wav_writer(args, out_dir, peer.sample_rate))
    return report(args, results, peer.sample_rate, {u: n for u, _, n in items}, out_dir)


def list_speakers(model: str) -> int:
    """Print a model's speakers, one per line (nothing but a note for a single-speaker model)."""
    from speechkd.checkpoints import load_model  # why: torch only on this path, not for --help

    lm = load_model(model)
    if not lm.multi_speaker:
        print(f"{model}: a single-speaker model (no --speaker needed)", file=sys.stderr)
        return 0
    print("\n".join(lm.speakers.ids))
    return 0


def speakers_of(args: argparse.Namespace, items: list[tuple[str, str, int]]) -> list[str | None] | None:
    """The voice of each utterance: ``--speaker`` for all, or its line of ``--utt2spk``."""
    if args.speaker and args.utt2spk:
        raise SpeechkdError("give --speaker (one voice) or --utt2spk (one per utterance), not both",
                            field="--speaker")
    if args.speaker:
        return [args.speaker] * len(items)
    if not args.utt2spk:
        return None
    from speechkd.data.kaldi import read_table  # why: only with --utt2spk

    table = read_table(args.utt2spk)
    missing = [u for u, _, _ in items if u not in table]
    if missing:
        raise SpeechkdError(f"{len(missing)} utterance(s) have no speaker, e.g. '{missing[0]}'", path=args.utt2spk,
                            field="--utt2spk", hint="add '<utt> <speaker>' lines for them")
    return [table[u] for u, _, _ in items]


def synth_systems(args: argparse.Namespace) -> int:
    """Every system of the manifest ``args.systems`` (written first from ``args.systems_from``)."""
    from speechkd.infer.vocode import resynthesize_datadir, vocode_dump  # why: imports torch (not for exported dirs)

    if args.model or args.text or args.input or args.list or args.output or args.out_dir:
        raise SpeechkdError("--systems synthesises the manifest's systems from --data-dir and --feats",
                            field="--systems", hint="leave out --model, TEXT, -i, --list, -o and -d")
    for flag in ("data_dir", "feats"):
        if not getattr(args, flag):
            raise SpeechkdError(f"--systems needs --{flag.replace('_', '-')}", field=f"--{flag.replace('_', '-')}",
                                hint="e.g. --data-dir data/test --feats dump/feats/test")
    if args.diffusion_steps < 1 or args.nj < 1:
        raise SpeechkdError(f"--diffusion-steps and --nj must be >= 1, got {args.diffusion_steps} and {args.nj}",
                            field="--diffusion-steps" if args.diffusion_steps < 1 else "--nj")
    text = os.path.join(args.data_dir, "text")
    if not os.path.isfile(text):
        raise SpeechkdError("the data dir has no text file", path=args.data_dir, field="--data-dir")
    if args.systems_from:
        test_set = os.path.basename(os.path.normpath(args.data_dir))
        write_manifest(args.systems, list_systems(args.systems_from, test_set, args.diffusion_steps))
    systems = read_manifest(args.systems)
    logger.info("%d systems in %s: %s", len(systems), args.systems, " ".join(s.name for s in systems))
    for s in systems:
        if s.kind == "model":
            spk = os.path.join(args.data_dir, "utt2spk")
            one = argparse.Namespace(**{**vars(args), "model": s.model, "vocoder": s.vocoder, "steps": s.steps,
                                        "text": [], "input": None, "list": text, "output": None,
                                        "out_dir": s.wav_dir, "speaker": None,
                                        "utt2spk": spk if os.path.isfile(spk) else None})
            rc = synth_model(one)
            if rc:
                return rc
            continue
        if s.kind == "world":
            fc = FeatureConfig.load(os.path.join(args.feats, "feature_config.yaml"))
            info = resynthesize_datadir(args.data_dir, s.wav_dir, s.vocoder, {}, feats=fc, num_utts=args.num_utts,
                                        device=args.device, nj=args.nj)
        else:
            # overwrite: wavs of a retrained vocoder move to .backup/<n>/ (logged), as a model system's
            # wavs are synthesized anew above; the same checkpoint resumes
            info = vocode_dump(args.feats, s.wav_dir, s.vocoder, {}, num_utts=args.num_utts, device=args.device,
                               overwrite=True)
        print(f"{s.wav_dir}: {info['utterances']} utterances ({info['vocoded_now']} vocoded now, RTF {info['rtf']})")
    return 0


def synth_model(args: argparse.Namespace) -> int:
    """Text -> wavs with one acoustic model (``args.model``)."""
    import torch

    from speechkd.infer.synthesize import Synthesizer  # why: imports torch (not for exported dirs)

    items = collect_inputs(args)
    check_writable(args, len(items))
    check_ids(args, items)
    out_dir = args.out_dir or ""  # as given: manifest paths relative when it is
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    t_load = time.perf_counter()
    synth = Synthesizer.from_exp(args.model, vocoder=args.vocoder, device=args.device,
                                 on_unknown=args.on_unknown, frontend=args.frontend, average=args.average)
    if args.steps:
        synth.set_steps(args.steps)
    logger.info("loaded %s (%s, step %d) + vocoder %s on %s in %.1f s", args.model, synth.loaded.name,
                synth.loaded.step, args.vocoder, synth.device, time.perf_counter() - t_load)
    line_of = {u: n for u, _, n in items}
    write = wav_writer(args, out_dir, synth.sample_rate)

    speakers = speakers_of(args, items) if synth.speakers else None
    results = synth.batch([t for _, t, _ in items], [u for u, _, _ in items], batch_size=args.batch_size,
                          speed=args.speed, pitch_scale=args.pitch_scale, energy_scale=args.energy_scale,
                          seed=args.seed, on_done=write, speakers=speakers)
    return report(args, results, synth.sample_rate, line_of, out_dir)


def report(args: argparse.Namespace, results: list, sr: int, line_of: dict[str, int], out_dir: str) -> int:
    """Errors on stderr, ``manifest.tsv`` / ``failures.tsv`` in ``-d DIR``, the summary line; the exit status."""
    failed = [r for r in results if r.error]
    ok = [r for r in results if not r.error]
    if not ok and len(failed) == 1:
        raise SpeechkdError(failed[0].error or "synthesis failed")
    for r in failed:
        n = line_of[r.utt]
        print(f"speechkd synth: error: {'line %d: ' % n if n else ''}{r.error}", file=sys.stderr)
    if not ok:
        raise SpeechkdError(f"all {len(failed)} utterances failed (see the errors above)")
    if args.out_dir:
        rows = [["id", "text", "path", "seconds", "synth_seconds", "batch_size", "stopped", "speaker"]]
        rows += [[r.utt, r.text, r.path, f"{len(r.wav) / sr:.3f}", f"{r.synth_seconds:.3f}",
                  str(r.batch_size), str(r.stopped).lower(), getattr(r, "speaker", "")] for r in ok]
        atomic_write_text(os.path.join(out_dir, MANIFEST), _tsv(rows))
        fail_path = os.path.join(out_dir, FAILURES)
        if failed:
            atomic_write_text(fail_path, _tsv([["id", "line", "error"]] +
                                              [[r.utt, str(line_of[r.utt]), r.error] for r in failed]))
        elif os.path.exists(fail_path):
            os.unlink(fail_path)  # a rerun that fixed them
    audio = sum(len(r.wav) for r in ok) / sr  # type: ignore[arg-type]
    busy = sum(r.synth_seconds / r.batch_size for r in ok)
    where = args.output or os.path.join(out_dir, MANIFEST)
    print(f"{where}: {len(ok)} utterance(s), {audio:.1f} s of audio in {busy:.1f} s (RTF {busy / audio:.3f})"
          + (f"; {len(failed)} failed, listed in {os.path.join(out_dir, FAILURES)}" if failed and args.out_dir
             else (f"; {len(failed)} failed" if failed else "")))
    return 1 if failed else 0


def synth_exported(args: argparse.Namespace) -> int:
    """Text -> wavs with an exported dir (``speechkd export``) on onnxruntime: no torch, no Lightning."""
    from speechkd.runtime.synth import OnnxSynthesizer  # why: onnxruntime is an optional package (runtime extra)

    refuse_options(args, ("--steps", "--average", "--frontend", "--vocoder"),
                   "an exported dir (its graphs, frontend and vocoder are fixed at export)", path=args.model)
    if args.device.startswith("cuda"):
        raise SpeechkdError("an exported dir runs on the CPU (onnxruntime)", field="--device", hint="--device cpu")
    if args.list_speakers:
        # why: the runtime path stays torch-free
        from speechkd.runtime.bundle import read_manifest as read_bundle

        speakers = read_bundle(args.model)["speakers"]
        if not speakers:
            print(f"{args.model}: a single-speaker model (no --speaker needed)", file=sys.stderr)
        else:
            print("\n".join(speakers))
        return 0
    items = collect_inputs(args)
    check_writable(args, len(items))
    check_ids(args, items)
    out_dir = args.out_dir or ""
    t_load = time.perf_counter()
    synth = OnnxSynthesizer(args.model, threads=args.threads, on_unknown=args.on_unknown)
    logger.info("loaded exported %s (%s + %s) in %.2f s", args.model, synth.name, synth.voc["kind"],
                time.perf_counter() - t_load)
    write = wav_writer(args, out_dir, synth.sample_rate)

    speakers = speakers_of(args, items) if synth.speakers else None
    results = synth.batch([t for _, t, _ in items], [u for u, _, _ in items], batch_size=args.batch_size,
                          speed=args.speed, pitch_scale=args.pitch_scale, energy_scale=args.energy_scale,
                          seed=args.seed, on_done=write, speakers=speakers)
    return report(args, results, synth.sample_rate, {u: n for u, _, n in items}, out_dir)
