"""ESPnet2 data and teacher outputs in, speechkd durations out (no ESPnet import needed).

Mappings, each checked where it is read:

- **Data dirs**: an ESPnet2 ``dump/raw/<set>`` holds Kaldi tables (``wav.scp``, ``text``,
  ``utt2spk``, optional ``segments``) whose paths are relative to the recipe dir
  (``egs2/<corpus>/tts1``); :func:`import_espnet_datadir` writes a speechkd data dir with those
  paths resolved against ``espnet_root``. ESPnet's ``text`` is raw text tokenised on the fly by
  ESPnet's cleaner and G2P; only pre-tokenised text (``token_type: phn`` with ``g2p: none``, or text
  written by ESPnet's tokenizer) can become a speechkd token dump, and every token must be in the list.
- **Token inventories**: ESPnet's ``token_list`` is ``<blank>``, ``<unk>``, tokens...,
  ``<sos/eos>`` (last); speechkd's ``tokens.txt`` is ``<pad>``, ``<unk>``, ``<eos>``, tokens...
  (:mod:`speechkd.text.tokens`). :func:`token_list_from_espnet` keeps ESPnet's token order, so
  speechkd id = ESPnet id + 1 for every ordinary token (``<unk>`` is 1 in both).
- **Durations**: ESPnet's TTS models append ``<sos/eos>`` to every input, so its ``durations``
  file (``<utt> d_1 ... d_S d_eos``, a Kaldi ``text_int`` table, decoder-step counts of the argmax
  attention, possibly 0) has one more entry than speechkd's tokens. Reading, the ``<eos>`` frames
  are added to the last token (trailing silence; speechkd's models append no ``<eos>``), the raw
  row is kept as ``durations_espnet``, and zero durations are repaired with
  :func:`speechkd.align.durations.fix_durations` (each token >= 1 frame, same sum). Writing,
  ``<eos>`` gets 0 frames, so ESPnet's FastSpeech (``--teacher_dumpdir``, which reads
  ``<teacher_dumpdir>/<set>/durations``) expands to exactly the frames speechkd's durations cover,
  and reading that file back gives speechkd's durations unchanged.
- **Frame shifts**: ESPnet's durations count decoder steps; with reduction factor r > 1 they sum
  to T / r. speechkd counts mel frames, so a teacher with r != 1 is refused (ESPnet's FastSpeech
  recipes use r = 1 teachers too). Feature settings come from the ESPnet ``config.yaml``
  (:func:`feature_config_from_espnet`: ``fbank`` extractor; magnitude mel, floor 1e-10,
  base-10 log by default); the student's FeatureConfig must then match it, as for any dump.
- **Teacher decodes**: ``tts_inference`` (``--use_teacher_forcing true`` for ``teacher_forced``)
  writes ``<dir>/durations``, ``<dir>/focus_rates`` (``<utt> F``; ESPnet's F is the largest
  over layers and heads of the per-head focus rate, the head its durations come from),
  ``<dir>/denorm/feats.scp`` (``<utt> <path>.npy``, [T, n_mels] raw log-mel) and
  ``speech_shape``. :func:`import_espnet_teacher` writes the teacher dump layout of
  :mod:`speechkd.distill.teacher_dump` (``index.scp``, ``data/<utt>.npz``, ``utt2focus_rate``,
  ``filtered``, ``report.json``/``report.md``); ``layer``/``head`` are -1 (ESPnet does not
  record which head), ``free_running`` mels are the denormalised feats.
"""

from __future__ import annotations

import logging
import os
import shutil

import numpy as np
import yaml

from speechkd.align.durations import fix_durations
from speechkd.data.kaldi import DataDir, read_table, write_datadir, write_table
from speechkd.distill.teacher_dump import DEFAULT_THRESHOLD, KD_MODES, write_report
from speechkd.errors import SpeechkdError
from speechkd.features.config import FeatureConfig
from speechkd.text.tokens import SPECIALS, TokenList, write_tokens
from speechkd.utils.io import atomic_open, atomic_write_json, atomic_write_text
from speechkd.utils.paths import safe_child

logger = logging.getLogger(__name__)

ESPNET_BLANK, ESPNET_UNK, ESPNET_EOS = "<blank>", "<unk>", "<sos/eos>"


# --- configs and token lists -------------------------------------------------------------------

def read_espnet_config(path: str) -> dict:
    """An ESPnet ``config.yaml`` as a dict (one-line errors for a missing or broken file)."""
    try:
        with open(path, encoding="utf-8") as f:
            cfg = yaml.safe_load(f)
    except FileNotFoundError:
        raise SpeechkdError("ESPnet config does not exist", path=path) from None
    except yaml.YAMLError as e:
        raise SpeechkdError(f"not valid YAML ({str(e).splitlines()[0]})", path=path) from None
    if not isinstance(cfg, dict):
        raise SpeechkdError("an ESPnet config is a YAML mapping", path=path)
    return cfg


def feature_config_from_espnet(config_yaml: str) -> FeatureConfig:
    """The FeatureConfig of an ESPnet2 TTS ``config.yaml`` (``feats_extract: fbank``).

    ESPnet's LogMelFbank: STFT (hann, centred) -> magnitude sqrt(max(power, 1e-10)) -> librosa
    mel filters (slaney unless htk) -> max(mel, 1e-10) -> log (base 10 by default)."""
    cfg = read_espnet_config(config_yaml)
    if cfg.get("feats_extract", "fbank") != "fbank":
        raise SpeechkdError(f"feats_extract is {cfg.get('feats_extract')!r}; only fbank (log-mel) maps to speechkd",
                            path=config_yaml, field="feats_extract")
    c = cfg.get("feats_extract_conf") or {}
    fs = c.get("fs", 16000)
    if isinstance(fs, str):
        fs = int(float(fs.lower().rstrip("k")) * (1000 if fs.lower().endswith("k") else 1))
    if (cfg.get("tts_conf") or {}).get("reduction_factor", 1) != 1:
        raise SpeechkdError("the ESPnet teacher has reduction_factor != 1: its durations count decoder steps, "
                            "speechkd's count frames", path=config_yaml, field="tts_conf.reduction_factor",
                            hint="use an r = 1 teacher, as ESPnet's FastSpeech recipes do")
    base = c.get("log_base", 10.0)
    if base not in (10, 10.0, None):
        raise SpeechkdError(f"log_base {base} has no speechkd equivalent (e or 10)", path=config_yaml,
                            field="feats_extract_conf.log_base")
    n_fft = int(c.get("n_fft", 1024))
    try:
        return FeatureConfig(sample_rate=int(fs), n_fft=n_fft, hop_length=int(c.get("hop_length", 256)),
                             win_length=int(c.get("win_length") or n_fft), window=c.get("window", "hann"),
                             n_mels=int(c.get("n_mels", 80)), fmin=float(c.get("fmin") or 0.0),
                             fmax=float(c.get("fmax") or int(fs) / 2),
                             mel_scale="htk" if c.get("htk", False) else "slaney", power=1.0,
                             center=bool(c.get("center", True)), log_base="e" if base is None else "10",
                             log_floor=1e-10)
    except (ValueError, TypeError) as e:
        raise SpeechkdError(f"feature settings do not map to a FeatureConfig ({e})", path=config_yaml,
                            field="feats_extract_conf") from None


def read_espnet_token_list(source: str) -> list[str]:
    """ESPnet's token list from a ``tokens.txt`` (one per line) or a ``config.yaml`` (``token_list``)."""
    if source.endswith((".yaml", ".yml")):
        toks = read_espnet_config(source).get("token_list")
        if isinstance(toks, str):  # a path to the list, relative to the recipe dir
            raise SpeechkdError(f"token_list points to a file ({toks}); pass that file", path=source)
    else:
        try:
            with open(source, encoding="utf-8") as f:
                toks = f.read().split("\n")
        except FileNotFoundError:
            raise SpeechkdError("ESPnet token list does not exist", path=source) from None
        toks = toks[:-1] if toks and toks[-1] == "" else toks
    if not isinstance(toks, list) or len(toks) < 3 or toks[0] != ESPNET_BLANK or toks[-1] != ESPNET_EOS:
        raise SpeechkdError(f"not an ESPnet token list (expected {ESPNET_BLANK} first and {ESPNET_EOS} last)",
                            path=source, field="token_list")
    return [str(t) for t in toks]


def token_list_from_espnet(espnet_tokens: list[str]) -> TokenList:
    """speechkd's TokenList of ESPnet's inventory: <pad>, <unk>, <eos>, then ESPnet's tokens in
    ESPnet's order (its <blank>, <unk> and <sos/eos> are speechkd's three specials)."""
    body = [t for t in espnet_tokens if t not in (ESPNET_BLANK, ESPNET_UNK, ESPNET_EOS)]
    clash = [t for t in body if t in SPECIALS]
    if clash:
        raise SpeechkdError(f"ESPnet token list holds speechkd's special token(s) {clash}", field="token_list")
    return TokenList(list(SPECIALS) + body)


# --- data dirs ---------------------------------------------------------------------------------

def _resolve(entry: str, root: str) -> str:
    """A wav.scp value with a relative file path made absolute against ``root`` (pipes kept)."""
    if entry.rstrip().endswith("|") or os.path.isabs(entry):
        return entry
    return os.path.normpath(os.path.join(root, entry))


def import_espnet_datadir(espnet_dir: str, out: str, *, espnet_root: str | None = None,
                          token_list: TokenList | None = None, tokens_out: str | None = None) -> DataDir:
    """ESPnet2 ``dump/raw/<set>`` -> speechkd data dir ``out`` (and, with ``token_list`` and
    ``tokens_out``, a token dump of its pre-tokenised text)."""
    if not os.path.isdir(espnet_dir):
        raise SpeechkdError("ESPnet data dir does not exist", path=espnet_dir)
    if os.path.exists(os.path.join(out, "wav.scp")):
        raise SpeechkdError("output data dir exists already", path=out, hint="choose a new --out")
    root = espnet_root or os.getcwd()
    tables = {}
    for name in ("wav.scp", "text", "utt2spk"):
        p = os.path.join(espnet_dir, name)
        if not os.path.exists(p):
            raise SpeechkdError(f"ESPnet data dir lacks {name}", path=espnet_dir)
        tables[name] = read_table(p)
    segments = None
    if os.path.exists(os.path.join(espnet_dir, "segments")):
        segments = {}
        for u, v in read_table(os.path.join(espnet_dir, "segments")).items():
            parts = v.split()
            try:
                segments[u] = (parts[0], float(parts[1]), float(parts[2]))
            except (IndexError, ValueError):
                raise SpeechkdError("segments line is not '<recording> <start> <end>'",
                                    path=os.path.join(espnet_dir, "segments"), utt=u) from None
    utts = set(tables["utt2spk"])
    for name in ("text",):
        if set(tables[name]) != utts:
            diff = sorted(set(tables[name]) ^ utts)[:3]
            raise SpeechkdError(f"{name} and utt2spk list different utterances (e.g. {', '.join(diff)})",
                                path=os.path.join(espnet_dir, name))
    dd = DataDir(wav_scp={k: _resolve(v, root) for k, v in tables["wav.scp"].items()}, text=tables["text"],
                 utt2spk=tables["utt2spk"], segments=segments)
    write_datadir(out, dd)
    if token_list is not None and tokens_out is not None:
        seqs = {}
        for u, t in tables["text"].items():
            toks = t.split()
            unk = token_list.unknown(toks)
            if unk:
                raise SpeechkdError(f"text holds {len(unk)} symbol(s) not in the ESPnet token list "
                                    f"({' '.join(unk[:5])}): ESPnet's text is raw and is tokenised by its "
                                    "cleaner and G2P at training time", path=os.path.join(espnet_dir, "text"),
                                    utt=u, hint="pass text in ESPnet's tokens (token_type phn, g2p none), "
                                                "or tokenise it with speechkd text")
            seqs[u] = toks
        os.makedirs(os.path.dirname(tokens_out) or ".", exist_ok=True)
        write_tokens(tokens_out, seqs)
    logger.info("ESPnet data dir %s -> %s (%d utterances)", espnet_dir, out, len(utts))
    return dd


# --- teacher decodes ---------------------------------------------------------------------------

def _table(decode_dir: str, name: str) -> dict[str, str]:
    """``<dir>/<name>`` as tts.sh merges it, or ``<dir>/<name>/<name>`` as tts_inference writes it."""
    for p in (os.path.join(decode_dir, name), os.path.join(decode_dir, name, name)):
        if os.path.isfile(p):
            return read_table(p)
    raise SpeechkdError(f"ESPnet decode lacks {name}", path=decode_dir,
                        hint="decode the teacher with tts_inference (--use_teacher_forcing true for teacher_forced)")


def _int_row(v: str, path: str, utt: str) -> np.ndarray:
    try:
        d = np.array([int(x) for x in v.split()], dtype=np.int64)
    except ValueError:
        raise SpeechkdError("durations are not integers", path=path, utt=utt) from None
    if len(d) < 2 or (d < 0).any():
        raise SpeechkdError("an ESPnet durations row holds >= 2 non-negative integers (tokens + <eos>)",
                            path=path, utt=utt)
    return d


def _feats_path(v: str, decode_dir: str, espnet_root: str, utt: str) -> str:
    for p in (v if os.path.isabs(v) else os.path.join(espnet_root, v),
              os.path.join(decode_dir, "denorm", os.path.basename(v))):
        if os.path.isfile(p):
            return p
    raise SpeechkdError(f"denormalised feats file not found ({v})", path=os.path.join(decode_dir, "denorm"), utt=utt,
                        hint="pass --espnet-root, the recipe dir the decode ran in")


def durations_from_espnet(d_espnet: np.ndarray, num_frames: int) -> np.ndarray:
    """speechkd durations [S] of an ESPnet row [S + 1]: <eos> frames added to the last token,
    then zeros repaired (each >= 1, sum = num_frames)."""
    d = d_espnet[:-1].copy()
    d[-1] += d_espnet[-1]
    return fix_durations(d, num_frames).astype(np.int32)


def durations_to_espnet(d: np.ndarray) -> np.ndarray:
    """ESPnet's row [S + 1] of speechkd durations [S]: <eos> gets 0 frames."""
    return np.concatenate([np.asarray(d, dtype=np.int64), [0]])


def import_espnet_teacher(decode_dir: str, out: str, mode: str, feature_config: FeatureConfig, *,
                          espnet_root: str | None = None, threshold: float = DEFAULT_THRESHOLD,
                          gt_frames: dict[str, int] | None = None, maxlenratio: float = 10.0,
                          overwrite: bool = False) -> dict:
    """An ESPnet2 teacher decode -> the speechkd teacher dump ``out`` (one KD mode); returns the report.

    ``gt_frames`` (utt -> ground-truth frames, e.g. a feature dump's ``utt2num_frames``): teacher-forced
    feats must have exactly these frames; free-running lengths are reported against them (needed).
    ``maxlenratio``: the decode's; a free-running output of maxlenratio x (tokens + 1) frames hit
    ESPnet's length cap (what its log warns about), i.e. never stopped."""
    if mode not in KD_MODES:
        raise SpeechkdError(f"unknown KD mode {mode!r}", field="--kd-mode", hint=" or ".join(KD_MODES))
    if mode == "free_running" and gt_frames is None:
        raise SpeechkdError("free-running lengths need the ground-truth frames", field="gt_frames",
                            hint="pass the split's feature dump (utt2num_frames)")
    root = espnet_root or os.getcwd()
    dur_t, foc_t = _table(decode_dir, "durations"), _table(decode_dir, "focus_rates")
    scp = os.path.join(decode_dir, "denorm", "feats.scp")
    if not os.path.isfile(scp):
        raise SpeechkdError("ESPnet decode lacks denorm/feats.scp", path=decode_dir,
                            hint="the teacher's normalize must be set (global_mvn) for denormalised feats")
    feats = read_table(scp)
    if os.path.exists(out):
        if not overwrite:
            raise SpeechkdError("teacher dump exists already", path=out, hint="choose a new --out or --overwrite")
        shutil.rmtree(out)
    os.makedirs(os.path.join(out, "data"))
    index, focus, filtered, rows = {}, {}, {}, []
    for utt in sorted(set(dur_t) | set(feats) | set(foc_t)):
        if utt not in dur_t or utt not in feats or utt not in foc_t:
            filtered[utt] = "missing"
            continue
        npz = safe_child(os.path.join(out, "data"), utt, ".npz", source=scp)
        mel = np.load(_feats_path(feats[utt], decode_dir, root, utt), allow_pickle=False).astype(np.float32)
        if mel.ndim != 2 or mel.shape[1] != feature_config.n_mels:
            raise SpeechkdError(f"feats are {mel.shape}, expected [T, {feature_config.n_mels}]", path=feats[utt],
                                utt=utt, hint="the ESPnet config's n_mels differs from the decode's")
        T = len(mel)
        raw = _int_row(dur_t[utt], os.path.join(decode_dir, "durations"), utt)
        if int(raw.sum()) != T:
            raise SpeechkdError(f"durations sum to {int(raw.sum())}, the feats have {T} frames", utt=utt,
                                path=os.path.join(decode_dir, "durations"),
                                hint="a reduction factor r > 1 teacher counts decoder steps; use r = 1")
        if len(raw) - 1 > T:
            raise SpeechkdError(f"{len(raw) - 1} tokens for {T} frames", utt=utt, path=os.path.join(decode_dir, "durations"))
        if mode == "teacher_forced" and gt_frames is not None and utt in gt_frames and gt_frames[utt] != T:
            raise SpeechkdError(f"teacher-forced feats have {T} frames, the ground truth {gt_frames[utt]}",
                                path=feats[utt], utt=utt, hint="the decode used other features than this dump")
        try:
            f = float(foc_t[utt])
        except ValueError:
            raise SpeechkdError("focus rate is not a number", path=os.path.join(decode_dir, "focus_rates"),
                                utt=utt) from None
        d = durations_from_espnet(raw, T)
        arrays = {"durations": d, "durations_espnet": raw.astype(np.int32), "focus_rate": np.float32(f),
                  "layer": np.int32(-1), "head": np.int32(-1), "num_frames": np.int32(T)}
        if mode == "free_running":
            arrays["mel"] = mel
        index[utt] = f"data/{utt}.npz {T}"
        focus[utt] = f"{f:.5f}"
        row = {"utt": utt, "focus_rate": f, "layer": -1, "head": -1, "num_frames": T}
        if mode == "free_running":
            if utt not in gt_frames:
                raise SpeechkdError("no ground-truth frame count for this utterance", utt=utt, field="gt_frames")
            stopped = T < int(maxlenratio * len(raw))  # len(raw) = tokens + <eos>, ESPnet's input length
            arrays["stopped"] = np.bool_(stopped)
            row.update(stopped=stopped, gt_frames=gt_frames[utt])
            if not stopped:
                filtered[utt] = "never_stopped"
        with atomic_open(npz, "wb") as fh:
            np.savez(fh, **arrays)
        rows.append(row)
        if f < threshold:
            filtered[utt] = ",".join(x for x in ("low_focus_rate", filtered.get(utt)) if x)
    write_table(os.path.join(out, "index.scp"), index)
    write_table(os.path.join(out, "utt2focus_rate"), focus)
    atomic_write_text(os.path.join(out, "filtered"), "".join(f"{u} {r}\n" for u, r in sorted(filtered.items())))
    feature_config.save(os.path.join(out, "feature_config.yaml"))
    atomic_write_json(os.path.join(out, "dump_info.json"),
                      {"kd_mode": mode, "source": "espnet", "decode_dir": os.path.abspath(decode_dir),
                       "method": "espnet_argmax", "attention": "espnet_best_head", "threshold": threshold,
                       "r": 1, "eos": "added to the last token"})
    report = write_report(out, mode, rows, filtered, threshold, 1)
    logger.info("ESPnet %s decode %s -> %s: %d utterances, %d filtered", mode, decode_dir, out, len(rows), len(filtered))
    return report


# --- speechkd durations out --------------------------------------------------------------------

def export_espnet_durations(dump_dir: str, out_dir: str, *, include_filtered: bool = False) -> int:
    """speechkd teacher dump -> ``out_dir/durations`` and ``out_dir/focus_rates`` as ESPnet's
    FastSpeech reads them (``--teacher_dumpdir``: ``<teacher_dumpdir>/<set>/durations``);
    utterances the dump filtered are left out unless ``include_filtered``. Returns the count."""
    index_path = os.path.join(dump_dir, "index.scp")
    if not os.path.isfile(index_path):
        raise SpeechkdError("not a speechkd teacher dump (no index.scp)", path=dump_dir,
                            hint="point at dump/teacher/<split>/<kd_mode>")
    index = read_table(index_path)
    filt_path = os.path.join(dump_dir, "filtered")
    filtered = read_table(filt_path, allow_empty_value=True) if os.path.exists(filt_path) else {}
    durs, focus = {}, {}
    for utt, v in index.items():
        if utt in filtered and not include_filtered:
            continue
        rel = v.split()[0]
        path = safe_child(os.path.join(dump_dir, "data"), os.path.splitext(os.path.basename(rel))[0], ".npz",
                          source=index_path)
        try:
            with np.load(path) as z:
                d, f, n = z["durations"], float(z["focus_rate"]), int(z["num_frames"])
        except (OSError, KeyError, ValueError) as e:
            raise SpeechkdError(f"cannot read the dump entry ({type(e).__name__})", path=path, utt=utt) from None
        if int(d.sum()) != n or (d < 1).any():
            raise SpeechkdError("durations do not sum to num_frames or have a zero", path=path, utt=utt)
        durs[utt] = " ".join(map(str, durations_to_espnet(d)))
        focus[utt] = f"{f:.5f}"
    os.makedirs(out_dir, exist_ok=True)
    for name, table in (("durations", durs), ("focus_rates", focus)):
        p = os.path.join(out_dir, name)
        if os.path.exists(p):
            raise SpeechkdError(f"{name} exists already", path=p, hint="choose a new output dir")
        write_table(p, table)
    return len(durs)


def utt2num_frames(feats_dir: str) -> dict[str, int]:
    """Frames per utterance of a speechkd feature dump (``feats.scp``: ``<utt> <npz> <T>``)."""
    p = os.path.join(feats_dir, "feats.scp")
    out = {}
    for u, v in read_table(p).items():
        parts = v.split()
        if len(parts) != 2 or not parts[1].isdigit():
            raise SpeechkdError("feats.scp line is not '<utt> <npz> <frames>'", path=p, utt=u)
        out[u] = int(parts[1])
    return out


__all__ = ["read_espnet_config", "feature_config_from_espnet", "read_espnet_token_list",
           "token_list_from_espnet",
           "import_espnet_datadir", "import_espnet_teacher", "export_espnet_durations",
           "durations_from_espnet", "durations_to_espnet", "utt2num_frames"]
