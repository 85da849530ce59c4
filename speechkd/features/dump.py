"""Feature dumps: log-mel, F0 and energy of every utterance of a data dir, parallel and resumable.

A dump dir ``<out>/`` holds::

    feature_config.yaml   the FeatureConfig every array was computed with (commented YAML)
    data/<utt>.npz        one file per utterance, written atomically:
                            mel     float32 [T, n_mels]  log-mel (speechkd.features.mel.log_mel)
                            lf0     float32 [T]          continuous log-F0, natural log of Hz
                                                         (speechkd.features.pitch), 0 if unvoiced throughout
                            vuv     float32 [T]          1 voiced / 0 unvoiced
                            energy  float32 [T]          L2 norm of the STFT magnitude per frame
                            num_samples int64 []         length of the audio the features came from
    feats.scp             <utt> data/<utt>.npz <T>     (path relative to <out>; C-sorted)
    utt2num_frames        <utt> <T>
    stats.npz, stats.json global statistics (speechkd.features.stats): computed from this
                          dump, or copied from the training dump with --stats-from
    log/features.<j>.log  logs of the parallel jobs

T is ``FeatureConfig.num_frames(num_samples)`` for every array of an utterance.
All arrays hold raw values; ``normalization: global`` tells models to
standardise with stats.npz.

Parallelism (Kaldi style): with ``nj > 1`` and a ``cmd`` (``run.pl``, ``slurm.pl``)
the parent runs ``$cmd JOB=1:nj <out>/log/features.JOB.log python -m speechkd.cli
features ... --job JOB --nj nj``; job j handles the j-th contiguous share of the
C-sorted utterances. The parent then writes the index and the statistics.

Resume: an utterance whose ``.npz`` exists and loads is skipped, so rerunning
an interrupted command computes only the missing ones. A dump made with another
FeatureConfig is a :class:`FeatureMismatchError` (use a new ``--out`` or ``--overwrite``).
"""

from __future__ import annotations

import logging
import os
import shlex
import shutil
import subprocess
import sys
import time
import zipfile

import numpy as np
import torch

from speechkd.audio import load_audio
from speechkd.data.kaldi import DataDir, read_datadir, read_table, write_table
from speechkd.errors import SpeechkdError
from speechkd.features.config import FeatureConfig, check_compatible
from speechkd.features.energy import energy_from_magnitude
from speechkd.features.mel import check_rate, mel_basis, mel_from_magnitude, stft_magnitude
from speechkd.features.pitch import extract_pitch, import_pyworld
from speechkd.features.stats import Stats, StatsAccumulator, stats_summary
from speechkd.utils.io import atomic_open
from speechkd.utils.paths import check_id, safe_child

logger = logging.getLogger(__name__)

CONFIG_FILE = "feature_config.yaml"
KEYS = ("mel", "lf0", "vuv", "energy", "num_samples")
_TAIL = 8  # log lines of a failed job shown in the parent's error


def extract_utterance(wav: np.ndarray, sample_rate: int, cfg: FeatureConfig,
                      utt: str | None = None) -> dict[str, np.ndarray]:
    """All features of one waveform, as stored in a dump's ``.npz``."""
    check_rate(sample_rate, cfg, utt=utt)
    with torch.no_grad():
        mag = stft_magnitude(torch.from_numpy(np.ascontiguousarray(wav, dtype=np.float32)), cfg)
        mel = mel_from_magnitude(mag, cfg)[0].numpy()
        energy = energy_from_magnitude(mag)[0].numpy()
    lf0, vuv = extract_pitch(wav, sample_rate, cfg, num_frames=len(mel), utt=utt)
    return {"mel": mel.astype(np.float32), "lf0": lf0, "vuv": vuv, "energy": energy.astype(np.float32),
            "num_samples": np.asarray(len(wav), dtype=np.int64)}


def load_utterance(path: str) -> dict[str, np.ndarray]:
    """The arrays of one dumped utterance."""
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def npz_path(out: str, utt: str) -> str:
    return safe_child(os.path.join(out, "data"), utt, ".npz")


def _frames(z: dict[str, np.ndarray], cfg: FeatureConfig) -> int | None:
    """Number of frames of a complete set of dumped arrays; None if incomplete or inconsistent."""
    if set(KEYS) - set(z):
        return None
    mel = z["mel"]
    if mel.ndim != 2 or mel.shape[1] != cfg.n_mels:
        return None
    T = mel.shape[0]
    return T if all(z[k].shape == (T,) for k in ("lf0", "vuv", "energy")) else None


def _try_load(path: str) -> dict[str, np.ndarray] | None:
    """The arrays of a dump file; None if absent or unreadable (e.g. truncated by a kill)."""
    if not os.path.exists(path):
        return None
    try:
        return load_utterance(path)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError):
        return None


def _valid_npz(path: str, cfg: FeatureConfig) -> int | None:
    """Number of frames of a complete, readable dump file; None if absent or broken."""
    z = _try_load(path)
    return None if z is None else _frames(z, cfg)


def prepare_out(out: str, cfg: FeatureConfig, overwrite: bool = False) -> None:
    """Create ``out`` with ``feature_config.yaml``; an existing dump must have the same config."""
    cfg_path = os.path.join(out, CONFIG_FILE)
    if overwrite and os.path.isdir(out):
        logger.info("--overwrite: removing the features of %s", out)
        shutil.rmtree(os.path.join(out, "data"), ignore_errors=True)
        for name in ("feats.scp", "utt2num_frames", "stats.npz", "stats.json", CONFIG_FILE):
            if os.path.exists(os.path.join(out, name)):
                os.unlink(os.path.join(out, name))
    if os.path.exists(cfg_path):
        old = FeatureConfig.load(cfg_path)
        check_compatible(old, cfg, f"existing dump {out}", "requested config",
                         hint=f"write to a new --out dir, or pass --overwrite to recompute {out}")
    else:
        os.makedirs(os.path.join(out, "data"), exist_ok=True)
        cfg.save(cfg_path)


def job_utts(utts: list[str], job: int, nj: int) -> list[str]:
    """The ``job``-th (1-based) of ``nj`` contiguous, near-equal shares of ``utts``."""
    if not 1 <= job <= nj:
        raise SpeechkdError(f"--job {job} is outside 1..{nj}", field="--job")
    k, m = divmod(len(utts), nj)
    start = (job - 1) * k + min(job - 1, m)
    return utts[start:start + k + (1 if job <= m else 0)]


def run_job(dd: DataDir, out: str, cfg: FeatureConfig, job: int = 1, nj: int = 1) -> int:
    """Dump this job's share of utterances, skipping finished ones; returns how many were computed."""
    utts = job_utts(dd.utts, job, nj)
    todo = [u for u in utts if _valid_npz(npz_path(out, u), cfg) is None]
    logger.info("job %d/%d: %d utterances, %d already done", job, nj, len(utts), len(utts) - len(todo))
    import_pyworld(), mel_basis(cfg)  # imports and caches before timing
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # parallelism comes from jobs; pyworld is single-threaded anyway
    t0, audio_s = time.perf_counter(), 0.0
    try:
        for i, utt in enumerate(todo, 1):
            if "/" in utt:
                raise SpeechkdError("utterance id contains '/'", utt=utt, hint="rename it in the data dir")
            entry, seg = dd.audio(utt)
            wav, sr = load_audio(entry, sample_rate=cfg.sample_rate, utt=utt, segment=seg,
                                 min_samples=cfg.n_fft // 2 + 1)
            feats = extract_utterance(wav, sr, cfg, utt=utt)
            with atomic_open(npz_path(out, utt), "wb") as f:
                np.savez(f, **feats)
            audio_s += len(wav) / sr
            if i % max(1, len(todo) // 10) == 0 or i == len(todo):
                el = time.perf_counter() - t0
                logger.info("job %d/%d: %d/%d done (%.1f s of audio in %.1f s, RTF %.4f)", job, nj, i,
                            len(todo), audio_s, el, el / max(audio_s, 1e-9))
    finally:
        torch.set_num_threads(threads)
    return len(todo)


def launch_jobs(cmd: str, data_dir: str, out: str, nj: int) -> None:
    """Run the jobs through ``$cmd`` (run.pl/slurm.pl); a failure names each failed job's log tail."""
    log_tmpl = os.path.join(out, "log", "features.JOB.log")
    argv = shlex.split(cmd) + [f"JOB=1:{nj}", log_tmpl, sys.executable, "-m", "speechkd.cli",
                               "features", "--data-dir", data_dir, "--out", out,
                               "--config", os.path.join(out, CONFIG_FILE), "--job", "JOB", "--nj", str(nj)]
    logger.info("running %d jobs: %s", nj, " ".join(shlex.quote(a) for a in argv))
    try:
        proc = subprocess.run(argv, capture_output=True, text=True)
    except OSError as e:
        raise SpeechkdError(f"cannot run --cmd {cmd!r}: {e}", field="--cmd",
                            hint="give a path to run.pl (e.g. recipes/utils/run.pl) or slurm.pl") from None
    if proc.returncode == 0:
        return
    failed = []
    for j in range(1, nj + 1):
        log = log_tmpl.replace("JOB", str(j))
        text = open(log, encoding="utf-8", errors="replace").read() if os.path.exists(log) else ""
        if "# Ended (code 0)" in text:
            continue
        tail = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith("# ")][-_TAIL:]
        failed.append(f"job {j} (log {log}):\n    " + "\n    ".join(tail or ["<empty log>"]))
    detail = "\n  ".join(failed) if failed else (proc.stderr.strip()[-1500:] or f"exit status {proc.returncode}")
    raise SpeechkdError(f"{len(failed) or 'some'} of {nj} feature jobs failed:\n  {detail}", path=out,
                        hint="fix the cause and rerun the same command: finished utterances are skipped")


def write_index(dd: DataDir, out: str, cfg: FeatureConfig, stats_from: str | None = None) -> Stats:
    """Check every utterance was dumped; write feats.scp, utt2num_frames and the statistics."""
    feats, frames, missing = {}, {}, []
    acc = StatsAccumulator() if stats_from is None else None
    for utt in dd.utts:
        z = _try_load(npz_path(out, utt))
        T = None if z is None else _frames(z, cfg)
        if T is None:
            missing.append(utt)
            continue
        feats[utt] = f"data/{utt}.npz {T}"
        frames[utt] = str(T)
        if acc is not None:
            acc.add(z["mel"], z["lf0"], z["vuv"], z["energy"])
    if missing:
        raise SpeechkdError(f"{len(missing)} utterance(s) have no features, e.g. {', '.join(missing[:5])}",
                            path=out, hint="rerun the same command: finished utterances are skipped")
    write_table(os.path.join(out, "feats.scp"), feats)
    write_table(os.path.join(out, "utt2num_frames"), frames)
    if acc is not None:
        stats = acc.result()
    else:
        other = os.path.join(os.path.dirname(os.path.abspath(stats_from)), CONFIG_FILE)
        if os.path.exists(other):
            check_compatible(FeatureConfig.load(other), cfg, f"--stats-from dump {os.path.dirname(stats_from)}",
                             f"this dump {out}", hint="statistics must come from a dump with the same config")
        stats = Stats.load(stats_from)
        if stats.mel_mean.shape != (cfg.n_mels,):
            raise SpeechkdError(f"statistics have {stats.mel_mean.shape[0]} mel bins, config {cfg.n_mels}",
                                path=stats_from)
    stats.save(os.path.join(out, "stats.npz"))
    return stats


def dump_features(data_dir: str, out: str, cfg: FeatureConfig, *, nj: int = 1, cmd: str | None = None,
                  stats_from: str | None = None, overwrite: bool = False) -> Stats:
    """Dump a data dir's features into ``out`` (see the module docstring); returns the statistics."""
    dd = read_datadir(data_dir)
    if not dd.utts:
        raise SpeechkdError("data dir has no utterances", path=data_dir)
    for utt in dd.utts:  # every id names a file in out/data: all checked before any work
        check_id(utt, source=os.path.join(data_dir, "utt2spk"))
    prepare_out(out, cfg, overwrite)
    t0 = time.perf_counter()
    if nj > 1 and cmd:
        launch_jobs(cmd, data_dir, out, min(nj, len(dd.utts)))
    else:
        if nj > 1:
            logger.warning("--nj %d without --cmd: running in this process", nj)
        run_job(dd, out, cfg)
    logger.info("features of %d utterances ready in %.1f s", len(dd.utts), time.perf_counter() - t0)
    stats = write_index(dd, out, cfg, stats_from)
    # With --stats-from the statistics are the training dump's, not this one's: say whose they are.
    logger.info("wrote %s (%d utterances); normalisation statistics %s: %s", os.path.join(out, "feats.scp"),
                len(dd.utts), "of this dump" if stats_from is None else f"copied from {stats_from}",
                stats_summary(stats))
    return stats


def read_feats_scp(out: str) -> dict[str, tuple[str, int]]:
    """``utt -> (npz path, frames)`` of a dump dir's ``feats.scp`` (written by :func:`write_index`),
    in file order; the npz path is joined to ``out``."""
    scp = os.path.join(out, "feats.scp")
    if not os.path.exists(scp):
        raise SpeechkdError("no feats.scp: not a feature dump", path=out,
                            hint="run `speechkd features` (recipe stage 2) first")
    res = {}
    for utt, value in read_table(scp).items():
        parts = value.split()
        if len(parts) != 2 or not parts[1].isdigit():
            raise SpeechkdError("expected '<utt> <path> <frames>'", path=scp, utt=utt,
                                hint="rerun `speechkd features` to rewrite the dump's index")
        res[check_id(utt, source=scp)] = (os.path.join(out, parts[0]), int(parts[1]))
    return res
