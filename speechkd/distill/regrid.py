"""A teacher's durations on another frame grid: a ``teacher_forced`` dump made on one feature set
moved onto the frames of another dump of the same utterances, so a student trained on other
features (another sample rate or hop, e.g. the 22.05 kHz, hop 256 features of the pretrained
HiFi-GAN vocoders) learns from the same teacher without training it again.

Each token boundary keeps its time. The boundary before frame ``b`` lies half a hop before that
frame's centre (:meth:`speechkd.features.config.FeatureConfig.frame_edge_seconds`); on the new
grid it becomes the nearest frame edge, the first and last boundaries are the new utterance's
start and end, and :func:`speechkd.align.durations.fix_durations` gives every token at least
one frame (a token shorter than a new frame borrows one from its longest neighbour). Going to a
finer grid moves no boundary by more than half a new frame; going to a coarser one can merge
short tokens into one frame each.

Layout of ``out`` (the teacher dump's, so students read it unchanged)::

    dump_info.json        kd_mode teacher_forced, regridded_from (the source dump and its info),
                          source (this dump's feats dir)
    feature_config.yaml   the FeatureConfig of the new frames
    data/<utt>.npz        durations int32 [S] (sum = num_frames), focus_rate, layer, head (copied),
                          num_frames int32 []; no attention (it lies on the old grid)
    index.scp, utt2focus_rate
    filtered              the source's, for the utterances both dumps hold, and every utterance of the
                          features the source lacks (reason not_in_teacher_dump; more than half
                          missing is an error: the wrong dump)

A rerun with the same source and feats keeps what is written; another is refused unless
``overwrite`` (the old dump moves to ``out/.backup/<n>/``).
"""

from __future__ import annotations

import json
import logging
import os

import numpy as np

from speechkd.align.durations import fix_durations
from speechkd.data.kaldi import read_table, write_table
from speechkd.errors import SpeechkdError
from speechkd.features.config import FeatureConfig
from speechkd.features.dump import read_feats_scp
from speechkd.utils.io import atomic_open, atomic_write_json
from speechkd.utils.outputs import claim_output_dir
from speechkd.utils.paths import safe_child

logger = logging.getLogger(__name__)

NO_DURATIONS = "not_in_teacher_dump"  # the `filtered` reason of a feature utterance the source dump lacks


def regrid_durations(d: np.ndarray, src: FeatureConfig, dst: FeatureConfig, dst_frames: int) -> np.ndarray:
    """Durations ``d`` (frames of ``src``) as frames of ``dst`` summing to ``dst_frames``, every
    token >= 1 frame (module docstring)."""
    d = np.asarray(d, dtype=np.int64).reshape(-1)
    inner = np.cumsum(d)[:-1]  # boundaries between tokens, in source frames
    b = np.rint(dst.frames_at_seconds(src.frame_edge_seconds(inner.astype(np.float64))))
    # an increasing map of nondecreasing boundaries, rounded and clipped: still nondecreasing
    edges = np.concatenate([[0], np.clip(b, 0, dst_frames).astype(np.int64), [dst_frames]])
    return fix_durations(np.diff(edges), dst_frames).astype(np.int32)


def _read_source(src_dir: str) -> tuple[dict, FeatureConfig, dict[str, str]]:
    paths = [os.path.join(src_dir, n) for n in ("dump_info.json", "feature_config.yaml", "index.scp")]
    for p in paths:
        if not os.path.exists(p):
            raise SpeechkdError(f"not a teacher dump (no {os.path.basename(p)})", path=src_dir,
                                hint="pass the kd-mode dir, e.g. dump/teacher/train/teacher_forced")
    try:
        with open(paths[0], encoding="utf-8") as f:
            info = json.load(f)
    except (OSError, ValueError) as e:
        raise SpeechkdError(f"unreadable dump_info.json ({e})", path=paths[0]) from None
    if not isinstance(info, dict) or info.get("kd_mode") != "teacher_forced":
        raise SpeechkdError(f"kd_mode is {info.get('kd_mode') if isinstance(info, dict) else None!r}: only "
                            "teacher-forced durations split the recorded audio, so only they move to another grid",
                            path=paths[0], field="kd_mode", hint="pass the teacher_forced dump")
    index = {u: v.split()[0] for u, v in read_table(paths[2]).items()}
    return info, FeatureConfig.load(paths[1]), index


def regrid_teacher_dump(src_dir: str, feats_dir: str, out: str, *, overwrite: bool = False) -> dict:
    """Write the ``teacher_forced`` dump ``src_dir`` re-gridded onto the frames of the feature
    dump ``feats_dir`` into ``out``. Utterances of the source that the feature dump lacks are
    left out, and those of the features the source lacks are listed as filtered (both logged).
    Returns ``{"num_utts", "filtered", "missing", "max_shift_ms"}``: ``max_shift_ms`` is the largest
    move of a boundary in time over all utterances (rounding, and merged tokens)."""
    info, src_fc, index = _read_source(src_dir)
    feats = read_feats_scp(feats_dir)
    dst_fc = FeatureConfig.load(os.path.join(feats_dir, "feature_config.yaml"))
    filt_path = os.path.join(src_dir, "filtered")
    filtered = read_table(filt_path, allow_empty_value=True) if os.path.exists(filt_path) else {}
    missing = sorted(set(feats) - set(index) - set(filtered))
    if missing and 2 * len(missing) > len(feats):
        raise SpeechkdError(f"{len(missing)} of the {len(feats)} utterances of the features are not in the teacher "
                            f"dump: {', '.join(missing[:5])}" + (f" and {len(missing) - 5} more" if len(missing) > 5
                                                                  else ""),
                            path=os.path.join(src_dir, "index.scp"), utt=missing[0],
                            hint="the dump and the features must come from the same utterances")
    if missing:  # a few (e.g. another split's): listed in `filtered`, so students leave them out and say so
        logger.warning("%s: %d utterance(s) of %s have no durations in the teacher dump, listed as filtered: %s%s",
                       src_dir, len(missing), feats_dir, ", ".join(missing[:5]),
                       f" and {len(missing) - 5} more" if len(missing) > 5 else "")
    left = sorted(set(index) - set(feats))
    if left:
        logger.warning("%s: %d utterance(s) of the teacher dump are not in %s, left out: %s", src_dir, len(left),
                       feats_dir, ", ".join(left[:5]))
    claim_output_dir(out, {"regridded_from": os.path.abspath(src_dir), "feats": os.path.abspath(feats_dir)},
                     verb="teacher-dump --from-dump", overwrite=overwrite)
    os.makedirs(os.path.join(out, "data"), exist_ok=True)
    new_index, rates, worst = {}, {}, 0.0
    for utt in sorted(u for u in index if u in feats):
        npz, frames = feats[utt]
        with np.load(os.path.join(src_dir, index[utt])) as z:
            d = z["durations"]
            keep = {k: z[k] for k in ("focus_rate", "layer", "head") if k in z.files}
        if len(d) > frames:
            raise SpeechkdError(f"{len(d)} tokens cannot each get a frame of {frames}", path=npz, utt=utt,
                                field="durations", hint="a finer grid (smaller hop) or drop the utterance")
        nd = regrid_durations(d, src_fc, dst_fc, frames)
        t_src = src_fc.frame_edge_seconds(np.cumsum(d)[:-1].astype(np.float64))
        t_dst = dst_fc.frame_edge_seconds(np.cumsum(nd)[:-1].astype(np.float64))
        inner = np.abs(t_src - t_dst)
        worst = max(worst, 1000.0 * float(inner.max()) if inner.size else 0.0)
        rel = os.path.relpath(safe_child(os.path.join(out, "data"), utt, ".npz"), out)
        with atomic_open(os.path.join(out, rel), "wb") as f:
            np.savez(f, durations=nd, num_frames=np.int32(frames), **keep)
        new_index[utt] = f"{rel} {frames}"
        if "focus_rate" in keep:
            rates[utt] = f"{float(keep['focus_rate']):.4f}"
    write_table(os.path.join(out, "index.scp"), new_index)
    write_table(os.path.join(out, "utt2focus_rate"), rates)
    kept = {u: r for u, r in filtered.items() if u in feats} | {u: NO_DURATIONS for u in missing}
    write_table(os.path.join(out, "filtered"), kept)
    dst_fc.save(os.path.join(out, "feature_config.yaml"))
    atomic_write_json(os.path.join(out, "dump_info.json"),
                      {"kd_mode": "teacher_forced", "source": os.path.abspath(feats_dir),
                       "regridded_from": {"dump": os.path.abspath(src_dir), "info": info,
                                          "frame_shift_s": src_fc.frame_shift_s},
                       "frame_shift_s": dst_fc.frame_shift_s, "max_boundary_shift_ms": worst})
    return {"num_utts": len(new_index), "filtered": len(kept), "missing": len(missing), "max_shift_ms": worst}
