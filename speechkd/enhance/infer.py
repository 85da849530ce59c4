"""``Enhancer``: a trained SE model (or a built-in baseline) applied to waveforms and data dirs.

- ``model`` is an exp dir / .ckpt of ``speechkd se-train`` or a built-in baseline:
  ``builtin:highpass80`` (4th-order Butterworth high-pass at 80 Hz, zero phase: the trivial
  baseline every SE table keeps), ``builtin:rnnoise`` (RNNoise, the deployed peer,
  :mod:`speechkd.enhance.rnnoise`; its lag removed) or ``builtin:identity``.
- ``teacher`` given: teacher/student inference S(T(y)) (the teacher runs first).
- ``average`` N: the weights of each model's last N checkpoints averaged; ``checkpoint`` K: the
  model's K-th newest checkpoint alone (the spread of single checkpoints; a teacher stays averaged).
- Input at another rate than the model's is refused, unless ``resample`` is set: then it is
  resampled to the model's rate (soxr, logged), enhanced, and resampled back, so the output
  has the input's rate and length.
"""

from __future__ import annotations

import json
import logging
import os
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import torch

from speechkd.audio import load_audio
from speechkd.corpora.common import resample as resample_audio
from speechkd.data.kaldi import read_datadir
from speechkd.enhance import rnnoise as rnnoise_peer
from speechkd.enhance.exp import load_se_model
from speechkd.errors import AudioError, SpeechkdError
from speechkd.runtime.se import OnnxEnhancer, is_se_dir
from speechkd.utils.io import atomic_write_json, atomic_write_wav
from speechkd.utils.outputs import claim_output_dir, same_path
from speechkd.utils.paths import safe_child

logger = logging.getLogger(__name__)

BUILTINS = ("builtin:highpass80", "builtin:rnnoise", "builtin:identity")
HPF_HZ, HPF_ORDER = 80.0, 4


def highpass80(wav: np.ndarray, sr: int) -> np.ndarray:
    from scipy import signal

    sos = signal.butter(HPF_ORDER, HPF_HZ, "highpass", fs=sr, output="sos")
    return signal.sosfiltfilt(sos, wav).astype(np.float32)


class Enhancer:
    """Callable on one float waveform at ``rate`` Hz; returns the enhanced waveform (same rate, length)."""

    def __init__(self, model: str, teacher: str | None = None, *, average: int = 1, checkpoint: int = 0,
                 resample: bool = False, device: str = "cpu"):
        self.spec = {"model": model, "teacher": teacher, "average": average, "checkpoint": checkpoint}
        self.resample, self.device = resample, torch.device(device)
        self.stages: list = []
        self.sample_rate: int | None = None  # None: any rate (built-ins)
        for name in ([teacher] if teacher else []) + [model]:
            if name == "builtin:rnnoise" and not rnnoise_peer.available():
                raise SpeechkdError("builtin:rnnoise needs the pyrnnoise wheel, which is not installed",
                                    field="--model", hint=rnnoise_peer.HINT)
            if name in BUILTINS:
                self.stages.append(name)
                continue
            if name.startswith("builtin:"):
                raise SpeechkdError(f"unknown built-in enhancer {name!r}; known: {', '.join(BUILTINS)}",
                                    field="--model")
            if is_se_dir(name):  # an exported dir (speechkd export): onnxruntime, its weights fixed at export
                if average > 1 or (checkpoint and name == model):
                    raise SpeechkdError("an exported dir holds fixed weights: --average/--checkpoint apply at export",
                                        path=name, field="--average")
                onnx = OnnxEnhancer(name, threads=1)
                if self.sample_rate not in (None, onnx.sample_rate):
                    raise SpeechkdError(f"teacher runs at {self.sample_rate} Hz but the student at "
                                        f"{onnx.sample_rate} Hz", path=name, hint="use models of one sample rate")
                self.sample_rate = onnx.sample_rate
                self.stages.append(onnx)
                continue
            # --checkpoint picks one checkpoint of the model; the teacher keeps its averaged weights
            single = checkpoint if name == model else 0
            loaded = load_se_model(name, average=1 if single else average, checkpoint=single, device=self.device)
            if self.sample_rate not in (None, loaded.sample_rate):
                raise SpeechkdError(f"teacher runs at {self.sample_rate} Hz but the student at "
                                    f"{loaded.sample_rate} Hz", path=name, hint="use models of one sample rate")
            self.sample_rate = loaded.sample_rate
            self.stages.append(loaded.model)
            self.spec.setdefault("steps", []).append(loaded.step)

    @torch.no_grad()
    def _run(self, wav: np.ndarray, sr: int) -> np.ndarray:
        x = np.asarray(wav, np.float32)
        for stage in self.stages:
            if stage == "builtin:highpass80":
                x = highpass80(x, sr)
            elif stage == "builtin:rnnoise":
                x = rnnoise_peer.rnnoise(x, sr)
            elif stage == "builtin:identity":
                x = x.copy()
            elif isinstance(stage, OnnxEnhancer):
                x = stage(x, sr)
            else:
                x = stage(torch.from_numpy(x).to(self.device)).cpu().numpy()
        return x

    def __call__(self, wav: np.ndarray, rate: int, *, name: str = "<input>") -> np.ndarray:
        if self.sample_rate is None or rate == self.sample_rate:
            return self._run(wav, rate)
        if not self.resample:
            raise AudioError(f"sample rate is {rate} Hz but the model works at {self.sample_rate} Hz", path=name,
                             field="sample_rate", hint="pass --resample to resample it (and the output back), "
                                                       "or resample the audio yourself")
        logger.info("%s: resampling %d -> %d Hz for the model, and the output back to %d Hz", name, rate,
                    self.sample_rate, rate)
        out = resample_audio(self._run(resample_audio(wav, rate, self.sample_rate), self.sample_rate),
                             self.sample_rate, rate)
        return np.pad(out, (0, max(0, len(wav) - len(out))))[: len(wav)]


def write_output(path: str, wav: np.ndarray, sr: int, subtype: str = "PCM_16") -> None:
    """Write atomically; 16-bit PCM unless the audio peaks above full scale (then 32-bit float, logged)."""
    peak = float(np.max(np.abs(wav))) if len(wav) else 0.0
    if subtype == "PCM_16" and peak >= 1.0:
        logger.warning("%s: peak %.2f exceeds full scale: written as 32-bit float, not clipped", path, peak)
        subtype = "FLOAT"
    atomic_write_wav(path, wav, sr, subtype=subtype)


def enhance_file(enh: Enhancer, inp: str, out: str, subtype: str = "PCM_16") -> None:
    wav, sr = load_audio(inp, mono="error")
    write_output(out, enh(wav, sr, name=inp), sr, subtype)


_WORKER: dict = {}


def _init_worker(kwargs: dict) -> None:
    torch.set_num_threads(1)
    _WORKER["enh"] = Enhancer(**kwargs)


def _job(job: tuple[str, str, tuple[float, float] | None, str, str]) -> float:
    utt, entry, seg, out, subtype = job
    wav, sr = load_audio(entry, utt=utt, segment=seg, mono="error")
    write_output(out, _WORKER["enh"](wav, sr, name=f"{entry} ({utt})"), sr, subtype)
    return len(wav) / sr


def enhance_datadir(data_dir: str, out_dir: str, *, model: str, teacher: str | None = None, average: int = 1,
                    checkpoint: int = 0, resample: bool = False, nj: int = 1, subtype: str = "PCM_16",
                    overwrite: bool = False, num_utts: int = 0) -> dict:
    """Write ``out_dir/<utt>.wav`` for every utterance of a data dir (skipping those already there unless
    ``overwrite``), over ``nj`` processes; writes and returns ``out_dir/enhance.json``."""
    dd = read_datadir(data_dir)
    utts = dd.utts[:num_utts] if num_utts > 0 else dd.utts
    scp = os.path.join(data_dir, "wav.scp")
    outs = {u: safe_child(out_dir, u, ".wav", source=scp) for u in utts}  # every id checked before any work
    for u in utts:
        entry = dd.audio(u)[0]
        if not entry.strip().endswith("|") and os.path.exists(outs[u]) and same_path(entry, outs[u]):
            raise SpeechkdError("the output would overwrite the input audio", path=outs[u], utt=u,
                                field="--out-dir", hint="choose an --out-dir outside the data's audio")
    # wavs of another model (or settings) are never counted as "already there"
    claim_output_dir(out_dir, {"data_dir": os.path.abspath(data_dir), "model": model, "teacher": teacher,
                               "average": average, "checkpoint": checkpoint, "resample": resample,
                               "subtype": subtype}, verb="enhance", overwrite=overwrite)
    jobs = []
    for u in utts:
        out = outs[u]
        if overwrite or not os.path.exists(out):
            entry, seg = dd.audio(u)
            jobs.append((u, entry, seg, out, subtype))
    kwargs = {"model": model, "teacher": teacher, "average": average, "checkpoint": checkpoint, "resample": resample}
    t0 = time.perf_counter()
    _init_worker(kwargs)  # in this process first: a bad model is one clear error, not a broken pool
    if nj <= 1 or len(jobs) <= 1:
        seconds = [_job(j) for j in jobs]
    else:
        # Round-robin chunks: each worker loads the model once.
        with ProcessPoolExecutor(max_workers=nj, initializer=_init_worker, initargs=(kwargs,)) as ex:
            seconds = list(ex.map(_job, jobs, chunksize=max(1, len(jobs) // (4 * nj))))
    wall = time.perf_counter() - t0
    manifest = os.path.join(out_dir, "enhance.json")
    if not jobs and os.path.exists(manifest):  # a rerun that found everything done keeps the first run's record
        logger.info("all %d utterances of %s already enhanced in %s", len(utts), data_dir, out_dir)
        with open(manifest, encoding="utf-8") as f:
            return json.load(f)
    info = {**kwargs, "data_dir": os.path.abspath(data_dir), "utterances": len(utts), "enhanced": len(jobs),
            "skipped_existing": len(utts) - len(jobs), "nj": nj, "wall_seconds": round(wall, 2),
            "audio_seconds": round(sum(seconds), 2),
            "rtf_per_process": round(wall * max(1, min(nj, len(jobs))) / sum(seconds), 4) if seconds else None}
    atomic_write_json(manifest, info)
    logger.info("enhanced %d utterances (%d already there) of %s -> %s in %.1f s", len(jobs),
                len(utts) - len(jobs), data_dir, out_dir, wall)
    return info
