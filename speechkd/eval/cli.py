"""``speechkd eval``: objective evaluation.

    speechkd eval asr --data-dir data/test --out exp/eval/asr_gt [--num-utts 50] [--nj 2]
    speechkd eval asr --data-dir data/test --wav-dir exp/fastspeech/synth/test --out exp/eval/asr_fs
    speechkd eval tts --data-dir data/test --wav-dir exp/fastspeech/synth/test --out exp/eval/fastspeech \
        [--num-utts 50] [--nj 2] [--no-asr] [--allow-missing] [--f0-method dio|harvest]
    speechkd eval summary --results exp/eval/*/results.json --out exp/eval
    speechkd eval se --ref-dir data/speech/test --enh-dir exp/student/enhanced/test \
        [--noisy-dir data/test_noisy] --out exp/eval/student [--num-utts 50] [--nj 2]
    speechkd eval se-summary --results exp/eval/*/*/results.json --out exp/eval
    speechkd eval se-systems --systems exp/systems.tsv --test-sets test_in_domain test_mismatched \
        --data-root data/se --out exp/eval [--num-utts 50] [--nj 2] [--paired-against teacher_nytt]
    speechkd eval durations --teacher-dump dump/teacher/train/teacher_forced --data-dir data/train \
        --out exp/eval/durations_train [--tokens dump/tokens/train/tokens] [--min-focus-rate 0.5]
    speechkd eval systems --systems exp/systems.tsv --data-dir data/test --out exp/eval [--num-utts 50] [--nj 2] \
        [--durations dump/teacher/train/teacher_forced data/train] [--compare-split dev] [--mcd espnet]
    speechkd eval speakers --model exp/fastspeech2 --data-dir data/test --out exp/eval/speakers_fastspeech2 \
        [--vocoder griffin_lim] [--per-speaker 8] [--nj 2]

``eval speakers`` (multi-speaker models, :mod:`speechkd.eval.speaker_identity`): every test sentence
spoken with every voice, and speaker x speaker tables of MCD and mean log-F0 difference against the
recordings; identity survives when each row's minimum is on the diagonal. ``eval tts`` and
``eval asr`` add a per-speaker table when the data dir has several speakers.

``eval systems`` is recipe stage 11: the ground truth under the recogniser (``<out>/ground_truth``),
``eval tts`` of every system of a systems manifest (:mod:`speechkd.infer.systems`, written by
``speechkd synth --systems``) into ``<out>/<system>``, one ``summary`` with the manifest's pairs;
then, where the inputs exist, the duration accuracy of a teacher dump against the corpus's own
phone timings (``<out>/durations_<split>``) and the diffusion teacher at k steps against its
k-step students on mels (``<out>/diffusion_steps``, ``speechkd distill compare``).

Writes ``results.json`` (summary and per-utterance rows) and ``results.md``.
"""

from __future__ import annotations

import argparse
import os

from speechkd.audio import audio_info
from speechkd.data.kaldi import read_datadir, read_table
from speechkd.enhance import systems as se_systems
from speechkd.eval.durations import durations_markdown, evaluate_dump
from speechkd.eval.intelligibility import asr_markdown, evaluate_asr
from speechkd.eval.se_eval import DNSMOS_MODES, evaluate_se, se_markdown
from speechkd.eval.se_summary import summarize_se
from speechkd.eval.se_systems import NOISY, eval_jobs, up_to_date
from speechkd.eval.stats import json_safe
from speechkd.eval.summary import summarize_systems
from speechkd.eval.tts_eval import TtsEvalConfig, evaluate_tts, per_speaker, speaker_markdown, tts_markdown
from speechkd.infer.systems import diffusion_chain, pairs, read_manifest
from speechkd.utils import args as av
from speechkd.utils.io import atomic_write_json, atomic_write_text


def add_dnsmos_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dnsmos", choices=DNSMOS_MODES, default="auto",
                   help="DNSMOS P.835 SIG/BAK/OVRL (reference-free; speechmos + onnxruntime): on, off, or auto "
                        "(when installed; default)")
    p.add_argument("--dnsmos-utts", type=av.nonneg_int, default=0, metavar="N",
                   help="DNSMOS of N evenly spaced utterances only (its network costs far more than the other "
                        "measures); 0 = all (default)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="what", metavar="WHAT")
    sub.required = True
    p = sub.add_parser("asr", help="WER/CER of ground-truth or synthesized audio with the offline recogniser")
    p.epilog = av.RUNS_PIPES
    p.add_argument("--data-dir", type=av.existing_dir,
                   required=True, help="reference Kaldi data dir (text, and audio when --wav-dir is absent)")
    p.add_argument("--wav-dir", type=av.existing_dir,
                   default=None, help="directory of <utt>.wav to evaluate instead of the data dir's audio")
    p.add_argument("--out", type=av.output_dir, required=True, help="output dir for results.json and results.md")
    p.add_argument("--num-utts", type=av.nonneg_int,
                   default=0, help="evaluate the first N utterances (C order); 0 = all")
    p.add_argument("--nj", type=av.jobs, default=1, help="parallel recogniser processes")
    p.add_argument("--title", type=av.nonempty_str, default=None)

    p = sub.add_parser("summary", help="one table over systems from their results.json files")
    p.add_argument("--results", type=av.text_file,
                   nargs="+", required=True, help="results.json files of eval tts / eval asr runs")
    p.add_argument("--out", type=av.output_dir, required=True, help="output dir for results.json and results.md")
    p.add_argument("--pairs", nargs="*", default=[], metavar="A:B",
                   help="systems compared utterance by utterance, A − B (e.g. diffusion_2:diffusion_8_steps2); "
                        "a side may pool runs of one system, paired run by run (A_s0+A_s1:B_s0+B_s1)")
    p.add_argument("--title", type=av.nonempty_str, default="Objective evaluation")

    p = sub.add_parser("se-summary", help="one table per test set over SE systems from eval se results.json files")
    p.add_argument("--results", type=av.text_file, nargs="+", required=True,
                   help="results.json files of eval se runs (<eval dir>/<test set>/<system>/results.json)")
    p.add_argument("--out", type=av.output_dir, required=True, help="output dir for results.json and results.md")
    p.add_argument("--title", type=av.nonempty_str, default="Speech enhancement: objective evaluation")
    p.add_argument("--paired-against", type=av.nonempty_str, default=None,
                   help="system (e.g. teacher_nytt) to compare every system with, utterance by utterance")

    p = sub.add_parser("tts", help="MCD, log-F0 RMSE, V/UV error (and WER/CER) of synthesized audio")
    p.epilog = av.RUNS_PIPES
    p.add_argument("--data-dir", type=av.existing_dir,
                   required=True, help="reference Kaldi data dir (ground-truth audio and text)")
    p.add_argument("--wav-dir", type=av.existing_dir, required=True, help="directory of synthesized <utt>.wav")
    p.add_argument("--out", type=av.output_dir, required=True, help="output dir for results.json and results.md")
    p.add_argument("--num-utts", type=av.nonneg_int,
                   default=0, help="evaluate the first N utterances (C order); 0 = all")
    p.add_argument("--nj", type=av.jobs, default=1, help="parallel processes")
    p.add_argument("--no-asr", action="store_true", help="skip the WER/CER of the offline recogniser")
    p.add_argument("--allow-missing", action="store_true",
                   help="record a missing synthesized file instead of failing")
    p.add_argument("--sample-rate", type=av.sample_rate_or_0, default=0,
                   help="common analysis rate: both signals are resampled to it; 0: the reference audio's "
                        "rate (that of the data dir's first utterance)")
    p.add_argument("--f0-method", choices=["dio", "harvest"], default="dio",
                   help="WORLD F0 estimator: dio + stonemask, or harvest (~7x slower, over-detects voicing)")
    p.add_argument("--f0-range", type=av.finite_float(1, 20000),
                   nargs=2, default=[71.0, 800.0], metavar=("FLOOR", "CEIL"),
                   help="F0 search range in Hz")
    p.add_argument("--mcd", choices=["world", "espnet"], default="world",
                   help="MCD definition: world (speechkd's: WORLD mel-cepstra c1..c24, exact DTW) or espnet "
                        "(ESPnet2's evaluate_mcd.py, the number in ESPnet's tables: SPTK mcep of the int16 files "
                        "at their own rate, c0 included, FastDTW; needs tools/install_espnet.sh). "
                        "The other definition is kept per utterance as mcd_world when espnet is chosen")
    p.add_argument("--title", type=av.nonempty_str, default=None)

    p = sub.add_parser("systems", help="every system of a systems manifest: ground truth, eval tts each, summary "
                                       "with its pairs (recipe stage 11)")
    p.add_argument("--systems", type=av.text_file, required=True, metavar="FILE", help="systems manifest (speechkd synth --systems)")
    p.add_argument("--data-dir", type=av.existing_dir, required=True, help="reference Kaldi data dir of the test set")
    p.add_argument("--out", type=av.output_dir, required=True, help="eval dir: <out>/<system>/, <out>/results.{json,md}")
    p.add_argument("--num-utts", type=av.nonneg_int, default=0, help="evaluate the first N utterances (C order); 0 = all")
    p.add_argument("--nj", type=av.jobs, default=1, help="parallel processes")
    p.add_argument("--title", type=av.nonempty_str, default="Objective evaluation", help="title of the summary table")
    p.add_argument("--durations", nargs=2, metavar=("TEACHER_DUMP", "DATA_DIR"),
                   help="also `eval durations` of this teacher_forced dump against the data dir's phone_durations, "
                        "when both exist, into <out>/durations_<data dir name>")
    p.add_argument("--mcd", choices=["world", "espnet"], default="world",
                   help="MCD definition of every system's eval tts (see eval tts --mcd; one summary holds one)")
    p.add_argument("--compare-split", type=av.name, default=None,
                   help="also compare the diffusion teacher at k steps with its k-step students on this split's "
                        "mels (`speechkd distill compare`), when the manifest has more than one diffusion model")

    p = sub.add_parser("speakers", help="speaker identity of a multi-speaker model: every test sentence in every "
                                        "voice, speaker x speaker MCD and log-F0 tables")
    p.add_argument("--model", type=av.existing_path, required=True, help="multi-speaker acoustic model exp dir")
    p.add_argument("--data-dir", type=av.existing_dir, required=True, help="test data dir (text, audio, utt2spk)")
    p.add_argument("--out", type=av.output_dir, required=True,
                   help="output dir: wav/<voice>/<utt>.wav (reused by a rerun), results.{json,md}")
    p.add_argument("--vocoder", type=av.nonempty_str, default="griffin_lim",
                   help="registered vocoder or a trained vocoder's exp dir")
    p.add_argument("--per-speaker", type=av.nonneg_int, default=0,
                   help="the first N test utterances of each speaker; 0 = all")
    p.add_argument("--nj", type=av.jobs, default=1, help="parallel analysis processes")
    p.add_argument("--device", type=av.device, default="cpu", help="synthesis device")
    p.add_argument("--seed", type=av.seed, default=0, help="synthesis seed")
    p.add_argument("--average", type=av.positive_int, default=1, help="average the model's last N checkpoints")
    p.add_argument("--overwrite", action="store_true",
                   help="wavs under --out made by another checkpoint, vocoder or seed move into "
                        "<out>/wav/.backup/<n>/ (without it they are refused, not reused)")
    p.add_argument("--reference-feats", type=av.existing_dir, metavar="DUMP",
                   help="compare with the recordings' own mels through the same vocoder (the test set's feature "
                        "dump, e.g. dump/feats/test; kept in <out>/reference) instead of the recordings: the "
                        "vocoder's error is then on both sides; tables in <out>/results_vocoded.{json,md}, "
                        "the synthesized wavs of an earlier run reused")

    p = sub.add_parser("se-systems", help="the noisy input and every system of an SE systems manifest on each test "
                                          "set (eval se each), then se-summary (recipe stage 6)")
    p.add_argument("--systems", type=av.text_file, required=True, metavar="FILE", help="SE systems manifest (speechkd enhance --systems)")
    p.add_argument("--test-sets", type=av.name, nargs="+", required=True, metavar="NAME", help="test sets: <data-root>/<name> each")
    p.add_argument("--data-root", type=av.nonempty_str, default="data/se", help="directory of the test sets, each with its clean ref/ "
                                                          "(default %(default)s)")
    p.add_argument("--out", type=av.output_dir, required=True, help="eval dir: <out>/<test set>/<system>/, <out>/results.{json,md}")
    p.add_argument("--num-utts", type=av.nonneg_int, default=0, help="evaluate the first N reference utterances; 0 = all")
    p.add_argument("--nj", type=av.jobs, default=1, help="parallel processes")
    p.add_argument("--title", type=av.nonempty_str, default="Speech enhancement: objective evaluation", help="title of the summary")
    p.add_argument("--paired-against", type=av.nonempty_str, default=None,
                   help="system (e.g. teacher_nytt) to compare every system with, utterance by utterance")
    add_dnsmos_arguments(p)

    p = sub.add_parser("se", help="PESQ-wb, STOI, ESTOI, SI-SDR (and improvements) of enhanced audio")
    p.epilog = av.RUNS_PIPES
    p.add_argument("--ref-dir", type=av.existing_dir,
                   required=True, help="clean references: Kaldi data dir or directory of <utt>.wav")
    p.add_argument("--enh-dir", type=av.existing_dir,
                   required=True, help="enhanced audio: directory of <utt>.wav (or a data dir)")
    p.add_argument("--noisy-dir", type=av.existing_dir,
                   default=None, help="noisy input (data dir or <utt>.wav dir) for improvements")
    p.add_argument("--out", type=av.output_dir, required=True, help="output dir for results.json and results.md")
    p.add_argument("--num-utts", type=av.nonneg_int,
                   default=0, help="evaluate the first N reference utterances; 0 = all")
    p.add_argument("--nj", type=av.jobs, default=1, help="parallel processes")
    p.add_argument("--allow-missing", action="store_true", help="record missing audio instead of failing")
    p.add_argument("--noisy-results", type=av.existing_file, default=None,
                   help="results.json of eval se on the noisy input itself (--enh-dir the noisy dir): its "
                        "scores of the noisy input are reused instead of computed again (PESQ, STOI, SI-SDR "
                        "when it had the same --ref-dir; DNSMOS)")
    add_dnsmos_arguments(p)
    p.add_argument("--title", type=av.nonempty_str, default=None)

    p = sub.add_parser("durations", help="phone-boundary error of teacher durations vs flite's own phone timings")
    p.add_argument("--teacher-dump", type=av.existing_dir, required=True,
                   help="teacher_forced dump dir (e.g. dump/teacher/train/teacher_forced)")
    p.add_argument("--data-dir", type=av.existing_dir,
                   required=True, help="Kaldi data dir with phone_durations (flite -psdur)")
    p.add_argument("--tokens", type=av.text_file, default=None,
                   help="token file the teacher saw (default: dump/tokens/<split>/tokens beside the dump's feats)")
    p.add_argument("--out", type=av.output_dir, required=True, help="output dir for results.json and results.md")
    p.add_argument("--min-focus-rate", type=av.probability, default=0.0,
                   help="leave out utterances whose focus rate is below this (default: evaluate all)")
    p.add_argument("--num-utts", type=av.nonneg_int,
                   default=0, help="evaluate the first N utterances (C order); 0 = all")
    p.add_argument("--title", type=av.nonempty_str, default=None)


def main(args: argparse.Namespace) -> int:
    if args.what == "systems":
        return _main_systems(args)
    if args.what == "durations":
        return _main_durations(args)
    if args.what == "speakers":
        from speechkd.eval.speaker_identity import results_name, speaker_identity  # why: imports torch (synthesis)

        res = speaker_identity(args.model, args.data_dir, args.out, vocoder=args.vocoder, per_speaker=args.per_speaker,
                               nj=args.nj, device=args.device, seed=args.seed, average=args.average,
                               overwrite=args.overwrite, reference_feats=args.reference_feats)
        print(open(os.path.join(args.out, results_name(args.reference_feats) + ".md"), encoding="utf-8").read())
        n = len(res["speakers"])
        print("rows with their minimum on the diagonal: " + ", ".join(
            f"{name} {res[k]['count']}/{n}" for name, k in (("MCD", "diagonal_min_mcd"),
                                                            ("log-F0 RMSE", "diagonal_min_lf0_rmse"),
                                                            ("|mean log-F0|", "diagonal_min_lf0"))))
        return 0
    if args.what == "tts":
        return _main_tts(args)
    if args.what == "se":
        return _main_se(args)
    if args.what == "se-systems":
        return _main_se_systems(args)
    if args.what == "se-summary":
        path = summarize_se(args.results, args.out, args.title, args.paired_against)
        print(open(path, encoding="utf-8").read())
        print(f"-> {path}")
        return 0
    if args.what == "summary":
        path = summarize_systems(args.results, args.out, args.title, args.pairs)
        print(open(path, encoding="utf-8").read().split("\n\n", 1)[1])
        print(f"-> {path}")
        return 0
    return _main_asr(args)


def _parse(*argv: str) -> argparse.Namespace:
    """The arguments of one ``speechkd eval WHAT ...`` call (its defaults included)."""
    p = argparse.ArgumentParser(prog="speechkd eval")
    add_arguments(p)
    return p.parse_args([str(a) for a in argv])


def _main_systems(args: argparse.Namespace) -> int:
    systems = read_manifest(args.systems)
    common = ("--data-dir", args.data_dir, "--num-utts", args.num_utts, "--nj", args.nj)
    # The ground truth under the same recogniser: the baseline every WER is read against.
    gt = os.path.join(args.out, "ground_truth")
    _main_asr(_parse("asr", *common, "--out", gt, "--title", "Ground-truth test audio"))
    results = [os.path.join(gt, "results.json")]
    for s in systems:
        out = os.path.join(args.out, s.name)
        _main_tts(_parse("tts", *common, "--wav-dir", s.wav_dir, "--out", out, "--mcd", args.mcd))
        results.append(os.path.join(out, "results.json"))
    path = summarize_systems(results, args.out, args.title, [f"{a}:{b}" for a, b in pairs(systems)])
    print(open(path, encoding="utf-8").read().split("\n\n", 1)[1])
    print(f"-> {path}")
    if args.durations:  # where the corpus knows the truth (flite's phone timings)
        dump, data = args.durations
        if os.path.isfile(os.path.join(data, "phone_durations")) and os.path.isfile(os.path.join(dump, "index.scp")):
            name = os.path.basename(os.path.normpath(data))
            _main_durations(_parse("durations", "--teacher-dump", dump, "--data-dir", data,
                                   "--out", os.path.join(args.out, f"durations_{name}")))
    # Diffusion: the teacher at k steps vs each distilled k-step student on mels, paired (same noise,
    # ground-truth durations): distance to the teacher's N-step sample, GV ratio.
    chain = diffusion_chain(systems)
    if args.compare_split and len(chain) > 1:
        from speechkd.distill import cli as distill_cli  # why: imports Lightning; only for a diffusion chain

        p = argparse.ArgumentParser(prog="speechkd distill")
        distill_cli.add_arguments(p)
        distill_cli.main(p.parse_args(["compare", "--exps", *chain, "--split", args.compare_split,
                                          "--out", os.path.join(args.out, "diffusion_steps")]))
    return 0


def _main_se_systems(args: argparse.Namespace) -> int:
    systems = se_systems.read_manifest(args.systems)
    test_sets = [w for v in args.test_sets for w in v.split()]
    jobs = eval_jobs(systems, test_sets, args.data_root, args.out)
    for j in jobs:
        if up_to_date(j):
            print(f"{j.out}: up to date with {j.enh_dir}, not evaluated again")
            continue
        # the noisy input is scored once per test set (its own row, run first) and its scores reused;
        # single checkpoints (the spread columns: SI-SDRi, PESQ) get no DNSMOS
        noisy = os.path.join(os.path.dirname(j.out), NOISY, "results.json")
        reuse = ["--noisy-results", noisy] if j.system != NOISY and os.path.isfile(noisy) else []
        _main_se(_parse("se", "--ref-dir", j.ref_dir, "--enh-dir", j.enh_dir, "--noisy-dir", j.noisy_dir,
                        "--out", j.out, "--nj", args.nj, "--num-utts", args.num_utts, "--title", j.title,
                        "--dnsmos", "off" if "@" in j.system else args.dnsmos,
                        "--dnsmos-utts", args.dnsmos_utts, *reuse))
    types = {t: read_table(f) for t in test_sets
             if os.path.isfile(f := os.path.join(args.data_root, t, "utt2noise_type"))}
    path = summarize_se([j.results for j in jobs], args.out, args.title, args.paired_against, types)
    print(open(path, encoding="utf-8").read())
    print(f"-> {path}")
    return 0


def _main_asr(args: argparse.Namespace) -> int:
    dd = read_datadir(args.data_dir)
    utts = dd.utts[: args.num_utts] if args.num_utts > 0 else dd.utts
    res = evaluate_asr(dd, utts, wav_dir=args.wav_dir, nj=args.nj)
    os.makedirs(args.out, exist_ok=True)
    source = args.wav_dir or f"{args.data_dir} (ground truth)"
    by = per_speaker(res.utts, dd.utt2spk)
    atomic_write_json(os.path.join(args.out, "results.json"),
                      {"source": source, "reference": args.data_dir, **res.summary(), "utts": res.utts,
                       "by_speaker": by})
    md = asr_markdown(res, args.title or f"ASR intelligibility: {source}") + "\n".join(["", *speaker_markdown(by)])
    atomic_write_text(os.path.join(args.out, "results.md"), md)
    s = res.summary()
    print(f"{source}: {s['num_utts']} utts, WER {100 * s['wer']:.1f}% "
          f"(95% CI {100 * s['wer_ci95'][0]:.1f}-{100 * s['wer_ci95'][1]:.1f}), CER {100 * s['cer']:.1f}% "
          f"-> {os.path.join(args.out, 'results.md')}")
    return 0


def _main_tts(args: argparse.Namespace) -> int:
    dd = read_datadir(args.data_dir)
    utts = dd.utts[: args.num_utts] if args.num_utts > 0 else dd.utts
    rate = args.sample_rate
    if rate == 0 and utts:  # the corpus's own rate: MCD of a 22.05 kHz corpus is measured at 22.05 kHz
        entry, _ = dd.audio(utts[0])
        rate = audio_info(entry, utts[0])[0]
    cfg = TtsEvalConfig(sample_rate=rate or 16000, f0_method=args.f0_method,
                        f0_floor=args.f0_range[0], f0_ceil=args.f0_range[1], mcd=args.mcd)
    res = evaluate_tts(dd, utts, args.wav_dir, cfg, nj=args.nj, allow_missing=args.allow_missing,
                       asr=not args.no_asr)
    os.makedirs(args.out, exist_ok=True)
    atomic_write_json(os.path.join(args.out, "results.json"),
                      json_safe({"system": args.wav_dir, "reference": args.data_dir, **res}))
    atomic_write_text(os.path.join(args.out, "results.md"),
                      tts_markdown(res, args.title or f"TTS evaluation: {args.wav_dir}"))
    s = res["summary"]
    line = (f"{args.wav_dir}: {s['mcd']['n']} utts, MCD {s['mcd']['mean']:.2f} dB "
            f"(95% CI {s['mcd']['ci95'][0]:.2f}-{s['mcd']['ci95'][1]:.2f}), "
            f"log-F0 RMSE {s['f0_rmse_cents']['mean']:.0f} cents, V/UV error {100 * s['vuv_error']['mean']:.1f}%")
    if res["asr"]:
        line += f", WER {100 * res['asr']['wer']:.1f}%"
    if res["missing"]:
        line += f", {len(res['missing'])} missing"
    print(f"{line} -> {os.path.join(args.out, 'results.md')}")
    return 0


def _main_se(args: argparse.Namespace) -> int:
    res = evaluate_se(args.ref_dir, args.enh_dir, args.noisy_dir, num_utts=args.num_utts, nj=args.nj,
                      allow_missing=args.allow_missing, dnsmos=args.dnsmos, noisy_results=args.noisy_results,
                      dnsmos_utts=args.dnsmos_utts)
    os.makedirs(args.out, exist_ok=True)
    atomic_write_json(os.path.join(args.out, "results.json"),
                      json_safe({"system": args.enh_dir, "reference": args.ref_dir, "noisy": args.noisy_dir, **res}))
    atomic_write_text(os.path.join(args.out, "results.md"),
                      se_markdown(res, args.title or f"Speech enhancement evaluation: {args.enh_dir}"))
    s = res["summary"]
    line = (f"{args.enh_dir}: {s['si_sdr']['n']} utts, PESQ {s['pesq']['mean']:.2f}, "
            f"STOI {s['stoi']['mean']:.3f}, ESTOI {s['estoi']['mean']:.3f}, SI-SDR {s['si_sdr']['mean']:.2f} dB")
    if "si_sdr_delta" in s:
        line += f" (SI-SDRi {s['si_sdr_delta']['mean']:+.2f} dB, PESQ {s['pesq_delta']['mean']:+.2f})"
    if "dnsmos_ovrl" in s:
        line += f", DNSMOS OVRL {s['dnsmos_ovrl']['mean']:.2f}"
    if res["missing"]:
        line += f", {len(res['missing'])} missing"
    print(f"{line} -> {os.path.join(args.out, 'results.md')}")
    return 0


def _main_durations(args: argparse.Namespace) -> int:
    res = evaluate_dump(args.teacher_dump, args.data_dir, args.tokens, args.min_focus_rate, args.num_utts)
    os.makedirs(args.out, exist_ok=True)
    atomic_write_json(os.path.join(args.out, "results.json"), json_safe(res))
    atomic_write_text(os.path.join(args.out, "results.md"),
                      durations_markdown(res, args.title or f"Duration accuracy: {args.teacher_dump}"))
    t, e = res["summary"]["teacher"], res["summary"]["even_split"]
    print(f"{args.teacher_dump}: {res['num_utts']} utts, {t['num_boundaries']} boundaries: teacher "
          f"{t['mean_abs_ms']:.1f} ms mean abs error (lag {t['mean_signed_ms']:+.1f} ms), "
          + (f"attention only {res['summary']['teacher_attention']['mean_abs_ms']:.1f} ms, "
             if "teacher_attention" in res["summary"] else "")
          + f"even split {e['mean_abs_ms']:.1f} ms -> {os.path.join(args.out, 'results.md')}")
    return 0
