"""Export a trained SE model (CRN teacher, SubbandGRU student) to ONNX: an exported SE dir
(:mod:`speechkd.runtime.se`) that :class:`speechkd.runtime.se.OnnxEnhancer` runs on onnxruntime,
offline or frame by frame, without torch.

One graph, ``mask.onnx``: the mask network on compressed magnitudes with its causal state as
inputs and outputs (``mask_step`` of the model: the causal convolutions' past frames and the GRU
state), dynamic batch and frame axes. The STFT, the level normalisation and the inverse STFT run
in numpy, as the TTS vocoder's inverse STFT does (``torch.istft`` does not export to a graph
onnxruntime accepts).

Why the TorchScript exporter (``dynamo=False``): the dynamo exporter specialised the frame axis of
the SubbandGRU graph to the traced length (onnxruntime reported the traced shape and the masks
were wrong on other lengths); the TorchScript exporter writes ONNX's GRU operator with the frame
axis dynamic, and matches PyTorch on every length (checked after export).

After writing, the export checks itself: the enhanced waveform of the exported dir (offline, and
streamed one hop at a time with the offline level) against the PyTorch model's, refused above
:data:`WAVE_TOLERANCE` max abs difference.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import warnings

import numpy as np
import torch
from torch import nn

import speechkd
from speechkd.checkpoints import load_weights_only, resolve_checkpoint
from speechkd.enhance.exp import load_se_model
from speechkd.errors import SpeechkdError
from speechkd.export.onnx import require_exporter
from speechkd.runtime import se as se_bundle
from speechkd.utils.io import atomic_write_json
from speechkd.utils.outputs import claim_output_dir

logger = logging.getLogger(__name__)

WAVE_TOLERANCE = 1e-4  # max |ONNX - PyTorch| of the enhanced waveform (full scale 1)


def is_se_model(model: str) -> bool:
    """Whether ``model`` (an exp dir or .ckpt) holds a checkpoint of ``speechkd se-train``."""
    try:
        ckpt = load_weights_only(resolve_checkpoint(model))
    except SpeechkdError:
        return False  # not ours to explain: the TTS export says what is wrong with it
    meta = ckpt.get("speechkd") if isinstance(ckpt, dict) else None
    return isinstance(meta, dict) and meta.get("kind") == "se"


class MaskGraph(nn.Module):
    """mag [B, T, F], state... -> mask [B, T, F], state after the T frames."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, mag: torch.Tensor, *state: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(self.model.mask_step(mag, *state))


def _export_mask(model: nn.Module, path: str, state_names: list[str], batch_axes: list[int]) -> None:
    """The mask graph through the TorchScript exporter into ``path`` (atomically)."""
    state = model.initial_state(2)
    mag = torch.rand(2, 7, model.n_freq, generator=torch.Generator().manual_seed(0))
    axes = {"mag": {0: "batch", 1: "frames"}, "mask": {0: "batch", 1: "frames"}}
    for name, ax in zip(state_names, batch_axes):
        axes[name] = axes[name + "_out"] = {ax: "batch"}
    tmp = path + ".tmp"
    log = io.StringIO()
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(log):
            warnings.simplefilter("ignore")  # the exporter warns that a GRU with a batch-first input is traced
            # eval(): a fresh wrapper is in training mode, and the exporter would trace BatchNorm's batch statistics
            torch.onnx.export(MaskGraph(model).eval(), (mag, *state), tmp, input_names=["mag", *state_names],
                              output_names=["mask", *[n + "_out" for n in state_names]], dynamic_axes=axes,
                              opset_version=17, dynamo=False)
        os.replace(tmp, path)
    except Exception as e:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        logger.error("exporter output:\n%s", log.getvalue()[-4000:])
        raise SpeechkdError(f"the ONNX exporter failed on {os.path.basename(path)}: {type(e).__name__}: "
                            f"{' '.join(str(e).split())[:300]}") from e


def check_signals(sample_rate: int, seed: int = 0) -> list[np.ndarray]:
    """Three noisy harmonic signals (1 s, 0.19 s, an odd length) at different levels: the export check's input."""
    rng = np.random.default_rng(seed)
    out = []
    for seconds, gain in ((1.0, 0.3), (0.19, 0.02), (0.4377, 1.0)):
        n = int(seconds * sample_rate)
        t = np.arange(n) / sample_rate
        f0 = rng.uniform(100, 250)
        x = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 10)) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))
        x = x / np.max(np.abs(x)) + 0.3 * rng.standard_normal(n)
        out.append((gain * x / np.max(np.abs(x))).astype(np.float32))
    return out


def compare(out: str, model: nn.Module, sample_rate: int) -> dict[str, float]:
    """The exported dir on onnxruntime vs ``model`` on :func:`check_signals`: max |waveform
    difference| offline, and streamed one hop at a time (with the level the offline model uses)."""
    enh = se_bundle.OnnxEnhancer(out, threads=1)
    offline = streamed = 0.0
    for x in check_signals(sample_rate):
        with torch.no_grad():
            ref = model(torch.from_numpy(x)[None])[0].numpy()
        offline = max(offline, float(np.abs(enh(x, sample_rate) - ref).max()))
        if enh.causal:  # a running-level model streams with its own causal level, else the utterance's
            level = None if enh.level == "running" else se_bundle.rms_level(x)
            y = se_bundle.stream_file(enh.stream(level=level), x, enh.hop)
            streamed = max(streamed, float(np.abs(y - ref).max()))
    res = {"wave_max_abs_diff": offline}
    if enh.causal:
        res["stream_wave_max_abs_diff"] = streamed
    return res


def export_se_onnx(model: str, out: str, *, average: int = 1, overwrite: bool = False, check: bool = True) -> dict:
    """Export the SE model ``model`` (exp dir or .ckpt; ``average`` > 1: its last N checkpoints'
    weights averaged, as ``speechkd enhance --average``) into ``out``; returns the manifest (with
    the measured parity under ``"check"``)."""
    require_exporter()
    loaded = load_se_model(model, average=average)
    m = loaded.model.eval()
    if not hasattr(m, "mask_step"):
        raise SpeechkdError(f"SE model {loaded.name!r} cannot be exported to ONNX (it has no mask_step)",
                            path=model, field="--model")
    settings = {"format": "onnx", "kind": "se", "model": os.path.abspath(model), "step": loaded.step,
                "average": average}
    claim_output_dir(out, settings, verb="export", overwrite=overwrite)
    j = lambda name: os.path.join(out, name)  # noqa: E731
    one, two = m.initial_state(1), m.initial_state(2)
    names = [f"state{i}" for i in range(len(one))]
    axes = [next(i for i, (a, b) in enumerate(zip(x.shape, y.shape)) if a != b) for x, y in zip(one, two)]
    logger.info("exporting %s (%s, step %d, %d checkpoint(s)) to %s", model, loaded.name, loaded.step,
                len(loaded.paths), out)
    _export_mask(m, j(se_bundle.MASK), names, axes)
    n_fft, hop = m.stft.n_fft, m.stft.hop
    causal = bool(getattr(m, "causal", False))
    manifest = {
        "format": se_bundle.FORMAT, "format_version": se_bundle.FORMAT_VERSION, "task": "enhance",
        "model": loaded.name, "sample_rate": loaded.sample_rate,
        "stft": {"n_fft": n_fft, "hop": hop, "window": "hann", "center": True,
                 "compression": se_bundle.COMPRESSION, "rms_floor": se_bundle.RMS_FLOOR},
        "causal": causal,
        "level": getattr(m, "level", "utterance"),  # utterance RMS, or running (causal: streams exactly)
        "latency_ms": round(1000 * n_fft / loaded.sample_rate, 3) if causal else None,
        "states": [{"name": n, "shape": list(x.shape), "batch_axis": a} for n, x, a in zip(names, one, axes)],
        "parameters": sum(p.numel() for p in m.parameters()),
        "source": {"model": os.path.abspath(model), "step": loaded.step, "average": average,
                   "checkpoints": [os.path.abspath(p) for p in loaded.paths], "version": loaded.version},
        "exported_by": {"speechkd": speechkd.__version__, "torch": torch.__version__},
        "files": {se_bundle.MASK: {"what": se_bundle.DESCRIPTIONS[se_bundle.MASK],
                                   "bytes": os.path.getsize(j(se_bundle.MASK))}},
    }
    atomic_write_json(j(se_bundle.MANIFEST), manifest)
    umask = os.umask(0)
    os.umask(umask)
    for name in (se_bundle.MASK, se_bundle.MANIFEST):  # readable like any installed file (temp files are 0600)
        os.chmod(j(name), 0o666 & ~umask)
    if check:
        manifest["check"] = compare(out, m, loaded.sample_rate)
        atomic_write_json(j(se_bundle.MANIFEST), manifest)
        os.chmod(j(se_bundle.MANIFEST), 0o666 & ~umask)
        logger.info("export check: max |waveform diff| %.2e offline, %s streamed", manifest["check"]["wave_max_abs_diff"],
                    manifest["check"].get("stream_wave_max_abs_diff", "-"))
        worst = max(manifest["check"].values())
        if worst > WAVE_TOLERANCE:
            raise SpeechkdError(f"the exported graph's enhanced waveform differs from the PyTorch model's by "
                                f"{worst:.2e} (tolerance {WAVE_TOLERANCE:g})", path=out,
                                hint="report it: this export is not faithful")
    return manifest
