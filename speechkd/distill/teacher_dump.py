"""Teacher dump: what an autoregressive teacher gives its students (FastSpeech, sec. 3.3).

For every utterance of a split, the trained Transformer-TTS teacher is run either

- ``teacher_forced``: on the ground-truth mels; durations then split the ground-truth frames, or
- ``free_running``: greedy decoding from the text alone; its mels are the targets of
  sequence-level knowledge distillation (Kim & Rush 2016) and the durations split *them*.

Durations: the focus rate F = (1/S) sum_s max_t a[s, t] of every encoder-decoder attention
layer/head picks the most diagonal head; its attention over decoder steps ``[S, T_r]`` is
expanded to mel frames (step j made frames j*r .. j*r+r-1, so each column repeats r times,
the tail past T is cut), and monotonic alignment search on its log splits the T frames
(:func:`speechkd.align.durations.durations_from_attention`; ``argmax`` counting is the
compatibility mode). ``attention="mean"`` runs MAS on the mean of all layers and heads instead
of the one chosen head (compared by ``speechkd eval durations`` against flite's
timings). ``shift_frames`` moves every boundary by a constant
number of frames (:func:`speechkd.align.durations.shift_durations`), to remove a systematic lag
measured by the lag scan of ``speechkd eval durations``; the recipe's teachers have none
(best shift 0: the attention of decoder step j already describes the frames step j emits, not
its input frame j*r - 1; egs/mini_en/tts1/RESULTS.md). Durations are over mel frames,
sum exactly to T and give every token at
least one frame (:func:`speechkd.align.durations.fix_durations` enforces both). The always-on
prenet dropout is seeded per batch, so a rerun gives the same durations.

Refinement (default, ``DumpOptions.refine``; :mod:`speechkd.align.refine`): once every
utterance is dumped, the attention durations are refined by Viterbi re-estimation of one
Gaussian per token type over the split's mels, anchored by the log attention; the attention-only
durations stay in each npz as ``durations_attn``.

Layout of ``<out>/<kd_mode>/`` (one dir per mode; ``--kd-mode both`` writes both)::

    dump_info.json        kd_mode, checkpoint and its step, code version, method, attention, shift_frames,
                          r, seed, threshold
    feature_config.yaml   the teacher's FeatureConfig (= the dump's, checked)
    data/<utt>.npz        durations int32 [S] (sum = num_frames), focus_rate float32 [],
                          layer int32 [], head int32 [], num_frames int32 [],
                          attn float16 [S, T_r] (the attention MAS ran on, over decoder steps),
                          durations_attn int32 [S] (the attention-only durations, when refined),
                          free_running only: mel float32 [T, n_mels] (raw log-mel),
                          stopped bool [] (False: hit the maximum length)
    index.scp             <utt> data/<utt>.npz <num_frames>      (C-sorted, every utterance)
    utt2focus_rate        <utt> <F>
    filtered              <utt> <reason>[,<reason>]   focus rate below threshold, never stopped
    report.json, report.md, focus_rate_hist.png, plots/<utt>.png (attention + durations)

The dump checks its own result: when the share of utterances whose focus rate reaches the
threshold is below ``DumpOptions.min_aligned``, the teacher has not learnt to align and students
trained on its durations would learn noise, so :func:`check_aligned` stops with that share and
the remedy (train the teacher longer), and marks the dump ``rejected`` in ``dump_info.json``; a
later run with another checkpoint replaces a rejected dump instead of refusing it.

Writes are atomic; rerunning an interrupted dump computes only the missing utterances
(the dump_info must match, else ``--overwrite``).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import time
import zipfile
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from speechkd.align.durations import durations_from_attention, fix_durations, select_head, shift_durations
from speechkd.align.refine import RefineConfig, RefineItem, refine_durations
from speechkd.checkpoints import LoadedModel, load_model
from speechkd.data.kaldi import write_table
from speechkd.errors import SpeechkdError
from speechkd.features.config import MEL_FIELDS, FeatureConfig, check_compatible
from speechkd.models.transformer_tts import TransformerTTS, expand_to_frames
from speechkd.text.tokens import TokenList
from speechkd.train.data import FrameBatchSampler, UtteranceDataset, collate, read_feature_config, read_split
from speechkd.train.config import loaded_train_config
from speechkd.utils.version import code_version
from speechkd.train.plots import plot_alignment, plot_histogram
from speechkd.utils.io import atomic_open, atomic_write_json, atomic_write_text
from speechkd.utils.paths import safe_child

logger = logging.getLogger(__name__)

KD_MODES = ("teacher_forced", "free_running")
# Below 0.5 a decoder step gives, on average, less than half its attention to any one token:
# the head is still diffuse or split between tokens, and MAS durations on it follow the
# guided-attention prior more than the speech (on mini_en, dev utterances pass 0.5 once the
# attention plot shows a clean diagonal).
DEFAULT_THRESHOLD = 0.5
NUM_PLOTS = 4  # first and worst utterances plotted


@dataclass
class DumpOptions:
    method: str = "mas"
    focus_threshold: float = DEFAULT_THRESHOLD
    batch_frames: int = 6000
    seed: int = 0
    max_frames_per_token: float | None = None
    attention: str = "head"  # "head": the focus-rate-chosen head (FastSpeech); "mean": all layers and heads
    shift_frames: int = 0  # constant boundary shift (frames, > 0: later) against a measured lag
    average: int = 1  # teacher weights: the mean of the exp dir's last N checkpoints
    # acoustic refinement of the attention durations (speechkd.align.refine); iters 0: attention only
    refine: RefineConfig = dataclasses.field(default_factory=RefineConfig)
    # the least share of utterances with focus rate >= focus_threshold a usable dump has (0: no check)
    min_aligned: float = 0.0


ATTENTIONS = ("head", "mean")


def utterance_result(per_layer: list[np.ndarray], r: int, num_frames: int, method: str, attention: str = "head",
                     shift_frames: int = 0) -> dict[str, np.ndarray]:
    """Durations etc. of one utterance from its attention per layer ``[H, S, T_r]``. The focus
    rate, layer and head are those of the most diagonal head whatever ``attention`` is."""
    layer, head, rate = select_head(per_layer)
    attn = per_layer[layer][head] if attention == "head" else np.mean([a.mean(0) for a in per_layer], axis=0)
    s = attn.shape[0]
    if s > num_frames:
        raise ValueError(f"too_short ({s} tokens, {num_frames} frames)")
    d = np.asarray(durations_from_attention(expand_to_frames(attn, r, num_frames), method=method))
    d = fix_durations(d, num_frames)
    d = np.asarray(shift_durations(d, shift_frames) if shift_frames else d, dtype=np.int32)
    assert d.sum() == num_frames and d.min() >= 1, (d.sum(), num_frames, d.min())
    return {"durations": d, "focus_rate": np.float32(rate), "layer": np.int32(layer), "head": np.int32(head),
            "num_frames": np.int32(num_frames), "attn": attn.astype(np.float16)}


def _load(path: str) -> dict[str, np.ndarray] | None:
    try:
        with np.load(path) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):
        return None


# (batch, kd mode, options, generator, utt2spk) -> per utterance its npz arrays or why it has none
RunBatch = Callable[[dict, str, DumpOptions, torch.Generator, dict], dict]


@dataclass
class Teacher:
    """An AR teacher as :func:`dump_mode` sees it: speechkd's own (:func:`speechkd_teacher`) or
    ESPnet2's (:mod:`speechkd.distill.espnet_teacher`). Both write the same dump."""
    token_list: TokenList  # encodes the split's tokens into the ids ``run_batch`` receives
    feature_config: FeatureConfig  # the mels the teacher was trained on (= the dump's, checked)
    r: int  # reduction factor: decoder step j made frames j*r .. j*r+r-1
    info: dict  # the teacher's part of dump_info.json: checkpoint, step, model, reduction_factor, version
    run_batch: RunBatch
    on_unknown: str = "map"  # tokens outside the teacher's inventory: "map" to <unk> or "error"
    retrain_hint: str | None = None  # check_aligned's remedy (None: speechkd's recipe, from max_minutes)
    max_minutes: float = 0.0  # the teacher's training budget, for that remedy


def speechkd_teacher(lm: LoadedModel, device: torch.device) -> Teacher:
    """speechkd's Transformer-TTS (:func:`run_batch`)."""
    return Teacher(lm.token_list, lm.feature_config, lm.model.r,
                   {"checkpoint": os.path.abspath(lm.path), "step": lm.step, "model": lm.name,
                    "reduction_factor": lm.model.r, "version": lm.version},
                   lambda batch, mode, opts, gen, utt2spk: run_batch(lm, batch, mode, opts, gen, device, utt2spk),
                   max_minutes=_max_minutes(lm))


def _info(teacher: Teacher, mode: str, opts: DumpOptions, split_dir: str) -> dict:
    return {"kd_mode": mode, **teacher.info, "duration_method": opts.method,
            "attention": opts.attention, "shift_frames": opts.shift_frames, "average": opts.average,
            "focus_threshold": opts.focus_threshold, "seed": opts.seed,
            "max_frames_per_token": opts.max_frames_per_token, "source": os.path.abspath(split_dir),
            "dumped_with": code_version()}


_SAME = ("kd_mode", "checkpoint", "step", "duration_method", "seed", "max_frames_per_token", "attention",
         "shift_frames", "average")
# what dumps made before these settings existed used
_DEFAULTS = {"attention": "head", "shift_frames": 0, "average": 1}


def prepare_dir(out: str, info: dict, feature_config: FeatureConfig, overwrite: bool) -> None:
    if overwrite and os.path.isdir(out):
        logger.info("--overwrite: removing %s", out)
        shutil.rmtree(out)
    path = os.path.join(out, "dump_info.json")
    if os.path.exists(path):
        old = json.load(open(path, encoding="utf-8"))
        diff = [k for k in _SAME if old.get(k, _DEFAULTS.get(k)) != info.get(k)]
        if diff and old.get("rejected"):
            # a dump check_aligned refused is no one's input: the retrained teacher's dump replaces it
            logger.warning("replacing the rejected dump in %s (%s) made with other settings (%s)", out,
                           old["rejected"], ", ".join(diff))
            shutil.rmtree(out)
        elif diff:
            raise SpeechkdError(f"an earlier dump made with other settings is here ({', '.join(diff)}: "
                                f"{[old.get(k) for k in diff]} vs {[info.get(k) for k in diff]})", path=out,
                                hint="pass --overwrite to redo it, or choose another --out")
    os.makedirs(os.path.join(out, "data"), exist_ok=True)
    atomic_write_json(path, info)
    feature_config.save(os.path.join(out, "feature_config.yaml"))


def run_batch(lm: LoadedModel, batch: dict, mode: str, opts: DumpOptions, generator: torch.Generator,
              device: torch.device, utt2spk: dict[str, str] | None = None) -> dict[str, dict[str, np.ndarray] | str]:
    """Per utterance of the batch: its npz arrays, or a string saying why it has none. A
    multi-speaker teacher runs each utterance with its own speaker (``utt2spk``)."""
    m = lm.model
    tokens, tl = batch["tokens"].to(device), batch["token_lens"].to(device)
    spk = lm.speaker_inputs([(utt2spk or {}).get(u) for u in batch["utts"]], batch["utts"], device)
    with torch.no_grad():
        if mode == "teacher_forced":
            mels = lm.normalize(batch["mels"].to(device))
            out = m(tokens, tl, mels, batch["mel_lens"].to(device), generator=generator, **spk)
            lens, red = batch["mel_lens"], out["reduced_lens"]
        else:
            out = m.inference(tokens, tl, generator=generator, max_frames_per_token=opts.max_frames_per_token,
                              **spk)
            lens, red = out["mel_lens"].cpu(), out["reduced_lens"]
            mel_out = lm.denormalize(out["mel"]).float().cpu().numpy()
    res: dict[str, dict[str, np.ndarray] | str] = {}
    for b, utt in enumerate(batch["utts"]):
        per_layer = m.attention_per_utterance(out["attns"], tl, red, b)
        try:
            r = utterance_result(per_layer, m.r, int(lens[b]), opts.method, opts.attention, opts.shift_frames)
        except ValueError as e:
            res[utt] = str(e)
            continue
        if mode == "free_running":
            r.update(mel=mel_out[b, : int(lens[b])].astype(np.float32), stopped=np.bool_(bool(out["stopped"][b])))
        res[utt] = r
    return res


def dump_mode(teacher: Teacher, data: str, split: str, out: str, mode: str, opts: DumpOptions,
              device: torch.device, overwrite: bool = False) -> dict:
    """Dump one KD mode of one split into ``out``; returns the report."""
    feats_dir = os.path.join(data, "feats", split)
    prepare_dir(out, _info(teacher, mode, opts, feats_dir), teacher.feature_config, overwrite)
    utts = read_split(data, split, teacher.token_list, on_unknown=teacher.on_unknown)
    utt2spk = {u.utt: u.spk for u in utts}
    todo = [i for i, u in enumerate(utts) if not _complete(safe_child(os.path.join(out, "data"), u.utt, ".npz"), mode)]
    logger.info("%s %s: %d utterances, %d already dumped", mode, split, len(utts), len(utts) - len(todo))
    ds = UtteranceDataset([utts[i] for i in todo])
    sampler = FrameBatchSampler([utts[i].frames for i in todo], opts.batch_frames, shuffle=False)
    failed: dict[str, str] = {}
    t0, done = time.perf_counter(), 0
    for k, idx in enumerate(sampler):
        batch = collate(ds[idx])
        # seeded by the batch's first utterance, so a resumed run reproduces the same batches
        gen = torch.Generator(device=device).manual_seed(opts.seed * 1_000_003 + _stable_hash(batch["utts"][0]))
        for utt, r in teacher.run_batch(batch, mode, opts, gen, utt2spk).items():
            if isinstance(r, str):
                failed[utt] = r
                continue
            with atomic_open(safe_child(os.path.join(out, "data"), utt, ".npz"), "wb") as f:
                np.savez(f, **r)
        done += len(idx)
        if k % 10 == 0 or done == len(todo):
            logger.info("%s %s: %d/%d utterances in %.1f s", mode, split, done, len(todo), time.perf_counter() - t0)
    refine_dump(out, utts, mode, opts, teacher.r)
    index, focus, filtered, rows = {}, {}, {}, []
    for u in utts:
        z = _load(safe_child(os.path.join(out, "data"), u.utt, ".npz"))
        if z is None:
            filtered[u.utt] = "missing"
            continue
        reasons = []
        if float(z["focus_rate"]) < opts.focus_threshold:
            reasons.append("low_focus_rate")
        if mode == "free_running" and not bool(z["stopped"]):
            reasons.append("never_stopped")
        if reasons:
            filtered[u.utt] = ",".join(reasons)
        index[u.utt] = f"data/{u.utt}.npz {int(z['num_frames'])}"
        focus[u.utt] = f"{float(z['focus_rate']):.4f}"
        rows.append({"utt": u.utt, "focus_rate": float(z["focus_rate"]), "layer": int(z["layer"]),
                     "head": int(z["head"]), "num_frames": int(z["num_frames"]), "gt_frames": u.frames,
                     "tokens": len(u.token_ids), "spk": u.spk,
                     **({"stopped": bool(z["stopped"])} if "stopped" in z else {})})
    for utt, why in failed.items():
        filtered[utt] = why
    write_table(os.path.join(out, "index.scp"), index)
    write_table(os.path.join(out, "utt2focus_rate"), focus)
    atomic_write_text(os.path.join(out, "filtered"), "".join(f"{u} {r}\n" for u, r in sorted(filtered.items())))
    report = write_report(out, mode, rows, filtered, opts.focus_threshold, teacher.r)
    logger.info("%s %s: mean focus rate %s, %d/%d filtered; %s", mode, split, _fmt(report["focus_rate"]["mean"]),
                len(filtered), len(utts), os.path.join(out, "report.md"))
    check_aligned(out, report, opts.min_aligned, teacher_minutes=teacher.max_minutes, hint=teacher.retrain_hint)
    return report


def _max_minutes(lm: LoadedModel) -> float:
    return float(loaded_train_config(lm).trainer.max_minutes or 0.0)


def check_aligned(out: str, report: dict, min_aligned: float, teacher_minutes: float = 0.0,
                  hint: str | None = None) -> None:
    """Refuse a dump whose teacher did not learn to align: fewer than ``min_aligned`` of its
    utterances reach the focus-rate threshold (``report["focus_rate"]["above_threshold"]``, of
    all utterances, those without durations included). Marks ``<out>/dump_info.json`` rejected
    (so the dump of a retrained teacher replaces it) and raises one error naming the share and
    the remedy; a passing dump loses an earlier rejection."""
    if not 0.0 <= min_aligned <= 1.0:
        raise SpeechkdError(f"the alignment floor must be a share in [0, 1], not {min_aligned:g}",
                            field="--min-aligned")
    share = float(report["focus_rate"]["above_threshold"])
    info_path = os.path.join(out, "dump_info.json")
    info = json.load(open(info_path, encoding="utf-8"))
    if share >= min_aligned:
        if info.pop("rejected", None):
            atomic_write_json(info_path, info)
        return
    figure = (f"{100 * share:.1f}% of {report['num_utts']} utterances have a focus rate >= {report['threshold']:g}, "
              f"below the floor of {100 * min_aligned:.1f}%")
    atomic_write_json(info_path, {**info, "rejected": figure})
    longer = f"trainer.max_minutes={2 * teacher_minutes:g}" if teacher_minutes > 0 else "trainer.max_minutes=N"
    raise SpeechkdError(
        f"the teacher does not align: {figure} ({report['kd_mode']}{_step(info)})", path=out,
        hint=(hint or f"train the teacher longer, it resumes from its last checkpoint: in a recipe "
                      f"./run.sh --stage 3 --force true --teacher_opts {longer}, which redoes this dump after it")
        + "; --min-aligned 0 accepts the dump as it is")


def _step(info: dict) -> str:
    return "" if info.get("step") is None else f", step {info['step']}"  # ESPnet's .pth files have none


def refine_dump(out: str, utts: list, mode: str, opts: DumpOptions, r: int) -> list[dict]:
    """Acoustic refinement (:mod:`speechkd.align.refine`) of every dumped utterance's durations,
    in place: ``durations`` become the refined ones, ``durations_attn`` keeps the attention-only
    ones, and a rerun starts again from those (so it is repeatable with any settings). The mels are
    the ground truth (teacher_forced, from the feats dump) or the teacher's own (free_running).
    The settings and per-iteration statistics go to ``dump_info.json`` under ``refine``."""
    cfg = opts.refine
    info_path = os.path.join(out, "dump_info.json")
    info = json.load(open(info_path, encoding="utf-8"))
    items, paths, arrays = [], [], []
    for u in utts:
        path = safe_child(os.path.join(out, "data"), u.utt, ".npz")
        z = _load(path)
        if z is None:
            continue
        d0 = z.get("durations_attn", z["durations"])
        t = int(z["num_frames"])
        mel = z["mel"] if mode == "free_running" else UtteranceDataset([u]).load(0)["mel"]
        items.append(RefineItem(u.utt, np.asarray(u.token_ids), expand_to_frames(z["attn"].astype(np.float32), r, t),
                                np.asarray(mel, dtype=np.float32)[:t], d0))
        paths.append(path)
        arrays.append(z)
    t0 = time.perf_counter()
    refined, history = refine_durations(items, cfg)
    for path, z, it, d in zip(paths, arrays, items, refined):
        new = {**z, "durations_attn": np.asarray(it.durations, dtype=np.int32), "durations": d.astype(np.int32)}
        if cfg.iters <= 0:
            new.pop("durations_attn")
        if not (np.array_equal(z["durations"], new["durations"]) and ("durations_attn" in z) == (cfg.iters > 0)):
            with atomic_open(path, "wb") as f:
                np.savez(f, **new)
    info["refine"] = {**dataclasses.asdict(cfg), "history": history, "seconds": round(time.perf_counter() - t0, 1)}
    atomic_write_json(info_path, info)
    if cfg.iters > 0:
        logger.info("%s: durations of %d utterances refined in %.1f s (%s)", mode, len(items),
                    time.perf_counter() - t0, info_path)
    return history


def _complete(path: str, mode: str) -> bool:
    z = _load(path)
    need = {"durations", "focus_rate", "num_frames"} | ({"mel", "stopped"} if mode == "free_running" else set())
    return z is not None and need <= set(z) and int(z["durations"].sum()) == int(z["num_frames"])


def _stable_hash(s: str) -> int:
    import zlib

    return zlib.crc32(s.encode("utf-8"))


def write_report(out: str, mode: str, rows: list[dict], filtered: dict[str, str], thr: float, r: int) -> dict:
    """report.json, report.md, focus_rate_hist.png and attention plots of the first/worst utterances."""
    f = np.array([x["focus_rate"] for x in rows], dtype=np.float64)
    counts, edges = np.histogram(f, bins=10, range=(0.0, 1.0))

    def stat(fn) -> float | None:
        return float(fn(f)) if len(f) else None

    heads: dict[str, int] = {}
    for x in rows:
        key = f"layer{x['layer']}_head{x['head']}"
        heads[key] = heads.get(key, 0) + 1
    n_none = sum(u not in {x["utt"] for x in rows} for u in filtered)
    rep = {"kd_mode": mode, "num_utts": len(rows) + n_none, "num_with_durations": len(rows), "threshold": thr,
           "focus_rate": {"mean": stat(np.mean), "median": stat(np.median), "min": stat(np.min),
                          "p10": stat(lambda a: np.percentile(a, 10)), "max": stat(np.max),
                          "above_threshold": float((f >= thr).sum() / max(len(rows) + n_none, 1)),
                          "above_0.7": float((f >= 0.7).sum() / max(len(rows) + n_none, 1)),
                          "histogram": {"edges": edges.round(2).tolist(), "counts": counts.tolist()}},
           "chosen_heads": dict(sorted(heads.items())),
           "filtered": [{"utt": u, "reason": why, "focus_rate": next((x["focus_rate"] for x in rows if x["utt"] == u),
                                                                     None)} for u, why in sorted(filtered.items())]}
    spks = sorted({x.get("spk", "") for x in rows} - {""})
    if len(spks) > 1:  # one badly aligned voice must be visible, not averaged away
        rep["per_speaker"] = {}
        for sp in spks:
            fs = np.array([x["focus_rate"] for x in rows if x.get("spk") == sp])
            n_f = sum(1 for x in rows if x.get("spk") == sp and x["utt"] in filtered)
            rep["per_speaker"][sp] = {"num_utts": int(fs.size), "mean": float(fs.mean()), "min": float(fs.min()),
                                      "above_threshold": float((fs >= thr).mean()), "filtered": n_f}
    if mode == "free_running" and rows:
        ratio = np.array([x["num_frames"] / x["gt_frames"] for x in rows])
        rep["free_running"] = {"never_stopped": int(sum(not x["stopped"] for x in rows)),
                               "length_ratio_to_ground_truth": {"mean": float(ratio.mean()),
                                                                "min": float(ratio.min()), "max": float(ratio.max())}}
    atomic_write_json(os.path.join(out, "report.json"), rep)
    plot_histogram(f.tolist(), os.path.join(out, "focus_rate_hist.png"), thr,
                   title=f"{mode}: focus rate of {len(rows)} utterances (mean {rep['focus_rate']['mean']:.3f})")
    ranked = sorted(rows, key=lambda x: x["focus_rate"])
    for x in rows[: NUM_PLOTS // 2] + ranked[: NUM_PLOTS // 2]:
        z = _load(safe_child(os.path.join(out, "data"), x["utt"], ".npz"))
        if z is not None and "attn" in z:
            attn = expand_to_frames(z["attn"].astype(np.float32), r, int(z["num_frames"]))
            plot_alignment(attn, z["durations"], os.path.join(out, "plots", f"{x['utt']}.png"),
                           title=f"{x['utt']} ({mode}): layer {x['layer']} head {x['head']}, "
                                 f"focus rate {x['focus_rate']:.3f}")
    fr = rep["focus_rate"]
    md = [f"# Teacher dump: {mode}", "",
          f"{rep['num_utts']} utterances, {len(rows)} with durations; focus rate mean {_fmt(fr['mean'])}, "
          f"median {_fmt(fr['median'])}, min {_fmt(fr['min'])}; {100 * fr['above_threshold']:.1f}% >= {thr:g}, "
          f"{100 * fr['above_0.7']:.1f}% >= 0.7 (of all utterances).",
          "", "| focus rate | utterances |", "|---|---|"]
    md += [f"| {edges[i]:.1f}-{edges[i + 1]:.1f} | {c} |" for i, c in enumerate(counts)]
    md += ["", f"Chosen layer/head: {', '.join(f'{k} x{v}' for k, v in rep['chosen_heads'].items())}", ""]
    if "per_speaker" in rep:
        md += ["## Per speaker", "", f"| speaker | utterances | focus rate mean | min | >= {thr:g} | filtered |",
               "|---|---:|---:|---:|---:|---:|"]
        md += [f"| {sp} | {v['num_utts']} | {v['mean']:.3f} | {v['min']:.3f} | {100 * v['above_threshold']:.1f}% | "
               f"{v['filtered']} |" for sp, v in rep["per_speaker"].items()]
        md.append("")
    if "free_running" in rep:
        fr2 = rep["free_running"]
        md += [f"Free-running: {fr2['never_stopped']} utterance(s) never stopped; generated/ground-truth length "
               f"{fr2['length_ratio_to_ground_truth']['mean']:.2f} on average.", ""]
    md += [f"## Filtered ({len(filtered)})", "", "| utterance | reason | focus rate |", "|---|---|---|"]
    for x in rep["filtered"]:
        rate = "" if x["focus_rate"] is None else f"{x['focus_rate']:.3f}"
        md.append(f"| {x['utt']} | {x['reason']} | {rate} |")
    atomic_write_text(os.path.join(out, "report.md"), "\n".join(md) + "\n")
    return rep


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def check_request(kd_mode: str, opts: DumpOptions) -> tuple[str, ...]:
    """The KD modes of ``--kd-mode`` (``both``: each), once the options are checked: before the work."""
    modes = KD_MODES if kd_mode == "both" else (kd_mode,)
    if not 0.0 <= opts.min_aligned <= 1.0:
        raise SpeechkdError(f"the alignment floor must be a share in [0, 1], not {opts.min_aligned:g}",
                            field="--min-aligned")
    if opts.attention not in ATTENTIONS:
        raise SpeechkdError(f"unknown attention source {opts.attention!r}", field="--attention",
                            hint=f"one of {', '.join(ATTENTIONS)}")
    if any(m not in KD_MODES for m in modes):
        raise SpeechkdError(f"unknown --kd-mode {kd_mode!r}", field="--kd-mode",
                            hint="teacher_forced, free_running or both")
    return modes


def resolve_device(device: str) -> torch.device:
    return torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                        ("cpu" if device == "auto" else device))


def teacher_dump(exp: str, data: str, split: str, out: str, kd_mode: str, opts: DumpOptions,
                 device: str = "auto", overwrite: bool = False) -> dict[str, dict]:
    """Load the teacher, check it against the dump, and dump each requested KD mode."""
    modes = check_request(kd_mode, opts)
    dev = resolve_device(device)
    lm = load_model(exp, device=dev, average=opts.average)
    if not isinstance(lm.model, TransformerTTS):
        raise SpeechkdError(f"model {lm.name} has no encoder-decoder attention to take durations from",
                            path=lm.path)
    check_compatible(lm.feature_config, read_feature_config(data, split), f"teacher checkpoint {lm.path}",
                     f"dump {os.path.join(data, 'feats', split)}", only=MEL_FIELDS,
                     hint="dump the features with the FeatureConfig the teacher was trained on")
    logger.info("teacher %s (step %d, r=%d) on %s/%s -> %s (%s)", lm.path, lm.step, lm.model.r, data, split,
                out, ", ".join(modes))
    teacher = speechkd_teacher(lm, dev)
    return {m: dump_mode(teacher, data, split, os.path.join(out, m), m, opts, dev, overwrite) for m in modes}
