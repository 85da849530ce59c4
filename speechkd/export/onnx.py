"""Export a trained FastSpeech / FastSpeech 2 / k-step diffusion student and its vocoder to ONNX (an exported dir,
:mod:`speechkd.runtime.bundle`), which :class:`speechkd.runtime.synth.OnnxSynthesizer` runs without torch.

Graphs, all with dynamic batch and length axes:

- ``encoder.onnx``: embedding + FFT encoder + variance adaptor (durations, and FastSpeech 2's
  pitch/energy embeddings at the default scales 1.0) -> ``h``, ``log_durations``;
- ``decoder.onnx``: FFT decoder + mel projection (+ post-net) on the length-regulated frames; for a
  diffusion student, its k-step DDIM sampler unrolled on them, from the noise given as an input;
- ``vocoder.onnx``: the Vocos-like generator up to its complex spectrum.

Why two acoustic graphs: the length regulator's output length is data-dependent
(``int(lens.max())`` and ``torch.searchsorted`` in ``length_regulate``). The TorchScript exporter
(``dynamo=False``) traces that length as a constant, and its export of the FastSpeech 2 encoder
alone already gave wrong outputs on inputs other than the traced one (where the dynamo export of
the same encoder matches PyTorch); torch.export cannot export an output shape that depends on
tensor values. So the dynamo exporter (``torch.export``) exports the two halves on either side of
the regulator, and the runtime repeats the token states in numpy, the few lines FastSpeech
sec. 3.2 describes.

Why the vocoder stops at the spectrum: ``torch.istft`` exports, but into a graph onnxruntime
refuses (a ScatterND with int32 indices); the runtime inverts the STFT in numpy
(:func:`speechkd.runtime.dsp.istft`, torch's conventions).

After writing, the export checks itself: the exported graphs on onnxruntime against the PyTorch
model on a batch of test inputs (max |mel difference|, waveform SNR), reported and refused above
:data:`MEL_TOLERANCE` for fp32.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import warnings
from typing import Any

import numpy as np
import torch
from torch import nn

import speechkd
from speechkd.checkpoints import LoadedModel, load_model, load_vocoder
from speechkd.errors import SpeechkdError
from speechkd.features.mel import mel_basis
from speechkd.infer.synthesize import resolve_frontend
from speechkd.config import dump_config
from speechkd.models.diffusion_sampling import ddim_step, sampling_grid
from speechkd.models.layers import length_mask
from speechkd.models.vocoders.griffin_lim import GriffinLim
from speechkd.models.vocoders.vocos import Vocos
from speechkd.runtime import bundle
from speechkd.utils.io import atomic_open, atomic_write_json, atomic_write_text
from speechkd.utils.outputs import claim_output_dir

logger = logging.getLogger(__name__)

EXPORTABLE = ("fastspeech", "fastspeech2", "diffusion")
MEL_TOLERANCE = 1e-3  # fp32 export: max |ONNX - PyTorch| of the normalised mel
MAX_DIFFUSION_FRAMES = 1 << 16  # frames a diffusion export accepts (its denoiser is convolutional)


class EncoderGraph(nn.Module):
    """tokens, token_lens [, spk] [, spk_emb] -> token states after the variance adaptor, log(d + 1).

    A multi-speaker model takes its speaker inputs after the lengths, in that order: ``spk [B]``
    (table rows) when it has a table, ``spk_emb [B, D]`` (an external embedding, normalised inside
    the graph as in :mod:`speechkd.models.speaker`) when it was trained with one. FastSpeech 2's
    per-speaker pitch/energy statistics are buffers indexed by ``spk`` inside the graph."""

    def __init__(self, model: nn.Module, table: bool = False, embedding: bool = False):
        super().__init__()
        self.model, self.table, self.embedding = model, table, embedding

    def forward(self, tokens: torch.Tensor, token_lens: torch.Tensor,
                *speaker: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        spk = speaker[0] if self.table else None
        spk_emb = speaker[-1] if self.embedding else None
        h, tmask = self.model.encode(tokens, token_lens, spk, spk_emb)
        h, _, pred = self.model.adapt(h, tmask, None, 1.0, spk=spk)
        return h, pred["log_durations"]


class DecoderGraph(nn.Module):
    """Length-regulated frames, mel_lens -> mel (after the post-net, zero past each length)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, frames: torch.Tensor, mel_lens: torch.Tensor) -> torch.Tensor:
        return self.model.decode(frames, mel_lens)[1]


class DiffusionDecoderGraph(nn.Module):
    """Condition frames, mel_lens, noise x_T -> mel: the model's k-step DDIM sampler unrolled
    (k = the model's own step count, fixed for a progressive student; Song et al. 2021 eq. 12 in x0
    form, :func:`speechkd.models.diffusion_sampling.ddim_step`). The noise levels of the grid are
    constants of the graph, computed in float64 as the PyTorch sampler does; the noise is an input so
    that the runtime draws it (numpy, seeded) and a test can feed both sides the same."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        n = model.cfg.steps
        grid = sampling_grid(n, n)
        ab = model.schedule.alpha_bar(torch.tensor(grid, dtype=torch.float64) / n)
        a, sigma = ab.sqrt(), (1.0 - ab).clamp_min(0.0).sqrt()
        # (tau_t, a_t, sigma_t, a_s, sigma_s, s == 0) per step, as Python floats (graph constants)
        self.steps = [(grid[i] / n, float(a[i]), float(sigma[i]), float(a[i + 1]), float(sigma[i + 1]),
                       grid[i + 1] == 0) for i in range(len(grid) - 1)]

    def forward(self, frames: torch.Tensor, mel_lens: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        mask = length_mask(mel_lens, frames.size(1))
        m = mask[..., None].to(noise.dtype)
        x = noise * m
        for tau, a_t, sig_t, a_s, sig_s, last in self.steps:
            x0 = self.model.denoise(x, x.new_full((x.size(0),), tau), frames, mask)
            x = x0 if last else ddim_step(x, x0, a_t, sig_t, a_s, sig_s)  # both samplers end on x0^
            x = x * m
        return self.model.denormalize(x) * m


class VocoderGraph(nn.Module):
    """Raw log-mel -> STFT coefficients as (real, imag) in a last axis of 2 (ONNX has no complex type)."""

    def __init__(self, generator: nn.Module):
        super().__init__()
        self.generator = generator

    def forward(self, log_mel: torch.Tensor) -> torch.Tensor:
        return torch.view_as_real(self.generator.spectrum(log_mel))


def _export(module: nn.Module, args: tuple, path: str, inputs: list[str], outputs: list[str],
            dynamic: dict[str, dict[int, Any]] | tuple) -> None:
    """One graph through the dynamo exporter into ``path`` (atomically; weights inside the file)."""
    tmp = path + ".tmp"
    log = io.StringIO()
    quiet = [logging.getLogger(n) for n in ("onnxscript", "onnx_ir", "torch.onnx")]
    levels = [q.level for q in quiet]
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(log):
            warnings.simplefilter("ignore")
            for q in quiet:
                q.setLevel(logging.WARNING)
            # strict torch.export: the non-strict trace fails on FastSpeech 2's bucket edges
            # (float() of a buffer), and torch.onnx.export would retry strict after that failure
            ep = torch.export.export(module.eval(), args, dynamic_shapes=dynamic, strict=True)
            torch.onnx.export(ep, args, tmp, input_names=inputs, output_names=outputs, dynamo=True,
                              external_data=False, verbose=False)
        os.replace(tmp, path)
    except Exception as e:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        logger.error("exporter output:\n%s", log.getvalue()[-4000:])
        raise SpeechkdError(f"the ONNX exporter failed on {os.path.basename(path)}: {type(e).__name__}: "
                            f"{' '.join(str(e).split())[:300]}") from e
    finally:
        for q, level in zip(quiet, levels):
            q.setLevel(level)


def quantize_int8(path: str) -> None:
    """Dynamic int8 quantisation of the weights of MatMul/Gemm (onnxruntime.quantization), in place."""
    from onnxruntime.quantization import QuantType, quantize_dynamic  # why: only with --quantize int8

    tmp = path + ".q.tmp"
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.WARNING)  # onnxruntime.quantization logs a line per tensor on the root logger
    try:
        # MatMul/Gemm only: quantising the Conv weights too (ConvInteger) made the quality-preset
        # FastSpeech 2 + Vocos slower than fp32 on onnxruntime's CPU kernels
        quantize_dynamic(path, tmp, weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul", "Gemm"])
    finally:
        root.setLevel(level)
    os.replace(tmp, path)


def require_exporter() -> None:
    """onnx and onnxscript (the dynamo exporter's), and onnxruntime (the check), or one error line."""
    import importlib.util

    missing = [m for m in ("onnx", "onnxscript", "onnxruntime") if importlib.util.find_spec(m) is None]
    if missing:
        raise SpeechkdError(f"the ONNX export needs {', '.join(missing)}", hint="pip install 'speechkd[export]'")


def _example_tokens(n_vocab: int, lens: list[int], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    tokens = torch.zeros(len(lens), max(lens), dtype=torch.long)
    for b, n in enumerate(lens):  # ids >= 3: past <pad>, <unk>, <eos>
        tokens[b, :n] = torch.randint(3, max(n_vocab, 4), (n,), generator=g)
    return tokens, torch.tensor(lens, dtype=torch.long)


def export_onnx(model: str, out: str, *, vocoder: str = "griffin_lim", quantize: str = "none",
                overwrite: bool = False, frontend: str | None = None, check: bool = True) -> dict:
    """Export ``model`` (an exp dir or .ckpt of FastSpeech / FastSpeech 2) with ``vocoder``
    (``griffin_lim`` or a trained Vocos-like vocoder's exp dir) into ``out``; returns the manifest
    (with ``check``: the measured parity under ``"check"``)."""
    require_exporter()
    lm = load_model(model, "cpu")
    if lm.name not in EXPORTABLE:
        raise SpeechkdError(f"model {lm.name!r} cannot be exported to ONNX (exportable: {', '.join(EXPORTABLE)})",
                            path=lm.path, field="--model")
    if quantize not in ("none", "int8"):
        raise SpeechkdError(f"unknown quantisation {quantize!r}", field="--quantize", hint="none or int8")
    fe = resolve_frontend(lm, model, frontend)
    voc = load_vocoder(vocoder, lm.feature_config, "cpu")
    if not (isinstance(voc, GriffinLim) or isinstance(voc, Vocos) and hasattr(voc.generator, "spectrum")):
        raise SpeechkdError(f"vocoder {vocoder!r} cannot be exported (exportable: griffin_lim, a trained "
                            "Vocos-like vocoder's exp dir)", field="--vocoder")
    settings = {"format": "onnx", "model": os.path.abspath(lm.path), "step": lm.step,
                "vocoder": vocoder if vocoder in ("griffin_lim",) else os.path.abspath(voc.path),
                "quantize": quantize}
    claim_output_dir(out, settings, verb="export", overwrite=overwrite)
    j = lambda name: os.path.join(out, name)  # noqa: E731
    fc = lm.feature_config
    diffusion = lm.name == "diffusion"
    # a diffusion model's encoder + variance adaptor is its FastSpeech 2 condition; its denoiser has no
    # positional table, so only the encoder's bounds the lengths
    top = lm.model.eval()
    m = top.condition if diffusion else top
    max_tokens = int(m.encoder.pe.pe.size(0))
    max_frames = MAX_DIFFUSION_FRAMES if diffusion else int(m.decoder.pe.pe.size(0))

    # dynamic axes (torch.export Dims): batch and lengths; the PE tables bound the lengths
    batch = torch.export.Dim("batch", min=1, max=4096)
    s_dim = torch.export.Dim("tokens", min=1, max=max_tokens)
    t_dim = torch.export.Dim("frames", min=1, max=max_frames)
    tokens, lens = _example_tokens(len(lm.token_list), [9, 6, 4])
    sp = lm.speakers
    known = sp.known if sp.conditioned else []
    spk_in = lm.speaker_inputs([known[i % len(known)] for i in range(len(lens))]) if known else {}
    enc = EncoderGraph(m, "spk" in spk_in, "spk_emb" in spk_in)
    spk_args = tuple(spk_in[k] for k in ("spk", "spk_emb") if k in spk_in)
    with torch.no_grad():
        h, log_d = enc(tokens, lens, *spk_args)
        dur = m.encode_condition(tokens, lens, **spk_in)[2]["durations"]
        frames = torch.zeros(len(lens), int(dur.sum(1).max()), h.size(2))
    logger.info("exporting %s (%s, step %d) to %s", lm.path, lm.name, lm.step, out)
    # positional dynamic shapes, one per parameter: the speaker inputs are the encoder's varargs (a tuple)
    _export(enc, (tokens, lens, *spk_args), j(bundle.ENCODER), ["tokens", "token_lens", *spk_in],
            ["h", "log_durations"], ({0: batch, 1: s_dim}, {0: batch})
            + ((tuple({0: batch} for _ in spk_args),) if spk_args else ()))
    if diffusion:
        noise = torch.randn(frames.size(0), frames.size(1), top.n_mels)
        _export(DiffusionDecoderGraph(top), (frames, dur.sum(1), noise), j(bundle.DECODER),
                ["frames", "mel_lens", "noise"], ["mel"],
                {"frames": {0: batch, 1: t_dim}, "mel_lens": {0: batch}, "noise": {0: batch, 1: t_dim}})
    else:
        _export(DecoderGraph(m), (frames, dur.sum(1)), j(bundle.DECODER), ["frames", "mel_lens"], ["mel"],
                {"frames": {0: batch, 1: t_dim}, "mel_lens": {0: batch}})
    files = [bundle.ENCODER, bundle.DECODER]
    if isinstance(voc, Vocos):
        gen = voc.generator.eval()
        _export(VocoderGraph(gen), (torch.randn(2, 12, fc.n_mels),), j(bundle.VOCODER), ["log_mel"], ["spec"],
                {"log_mel": {0: batch, 1: torch.export.Dim("voc_frames", min=2, max=1 << 20)}})
        files.append(bundle.VOCODER)
        # receptive half-width in frames: the embedding conv and each block's depthwise conv see k // 2 either side
        voc_info = {"kind": "vocos", "n_fft": int(gen.n_fft),
                    "receptive_frames": (len(gen.blocks) + 1) * (int(gen.cfg.kernel_size) // 2)}
    else:
        inv = np.linalg.pinv(np.asarray(mel_basis(fc), np.float64)).astype(np.float32)
        with atomic_open(j(bundle.GRIFFIN_LIM), "wb") as f:
            np.savez(f, inv_basis=inv)
        files.append(bundle.GRIFFIN_LIM)
        voc_info = {"kind": "griffin_lim", "n_iter": voc.cfg.n_iter, "momentum": voc.cfg.momentum,
                    "power": voc.cfg.power}
    if quantize == "int8":
        for name in files:
            if name.endswith(".onnx"):
                quantize_int8(j(name))
    lm.token_list.save(j(bundle.TOKENS))
    atomic_write_text(j(bundle.FRONTEND), dump_config(fe))
    fc.save(j(bundle.FEATURES))
    with atomic_open(j(bundle.MEL_STATS), "wb") as f:
        np.savez(f, mel_mean=np.asarray(lm.mel_mean, np.float32), mel_std=np.asarray(lm.mel_std, np.float32))
    files += [bundle.TOKENS, bundle.FRONTEND, bundle.FEATURES, bundle.MEL_STATS]
    manifest = {
        "format": bundle.FORMAT, "format_version": bundle.FORMAT_VERSION,
        "model": lm.name, "sample_rate": fc.sample_rate, "speakers": known,
        "controls": ["speed"],  # pitch/energy scales are traced at 1.0
        "quantize": quantize, "vocoder": voc_info,
        "max_tokens": max_tokens, "max_frames": max_frames, "max_token_frames": int(m.cfg.max_token_frames),
        "source": {"model": os.path.abspath(lm.path), "step": lm.step, "vocoder": settings["vocoder"],
                   "version": lm.version},
        "exported_by": {"speechkd": speechkd.__version__, "torch": torch.__version__},
        "files": {name: {"what": bundle.DESCRIPTIONS[name], "bytes": os.path.getsize(j(name))} for name in files},
    }
    if diffusion:  # the decoder takes x_T; the runtime draws it per utterance (numpy, seeded)
        manifest["diffusion"] = {"steps": int(top.cfg.steps), "sampler": "ddim", "schedule": top.cfg.schedule,
                                 "noise": "numpy default_rng(seed).standard_normal((frames, n_mels)) per utterance"}
        manifest["controls"] = ["speed", "seed"]
    if known or diffusion:
        manifest["format_version"] = bundle.FORMAT_VERSION
    if known:  # the encoder's speaker inputs and what the runtime feeds them
        manifest["speaker_inputs"] = {
            "table": "spk" in spk_in, "embed_dim": sp.embed_dim if "spk_emb" in spk_in else 0,
            # spk row of each speaker; spk_emb: its mean training embedding (fed raw, normalised in the graph)
            "rows": {s: i for i, s in enumerate(sp.ids)} if "spk" in spk_in else {},
            "embeddings": {s: sp.embeddings[s] for s in known} if "spk_emb" in spk_in else {},
            # FastSpeech 2's per-speaker pitch/energy statistics (speaker_variance_norm): buffers of the
            # encoder graph, indexed by spk there; recorded for the reader
            "variance_stats": {s: sp.variance_stats[s] for s in known if s in sp.variance_stats}
            if getattr(m, "spk_pitch_stats", None) is not None else {}}
    if not (known or diffusion):
        manifest["format_version"] = 1  # readable by runtimes that predate speaker and noise inputs
    atomic_write_json(j(bundle.MANIFEST), manifest)
    umask = os.umask(0)
    os.umask(umask)
    for name in [*files, bundle.MANIFEST]:  # readable like any installed file (temp files are made 0600)
        os.chmod(j(name), 0o666 & ~umask)
    if check:
        manifest["check"] = check_export(out, lm, voc)
        fp32 = quantize == "none"
        logger.info("export check (%s): max |mel diff| %.2e, vocoder SNR %s dB", quantize,
                    manifest["check"]["mel_max_abs_diff"], manifest["check"].get("vocoder_snr_db", "-"))
        if fp32 and manifest["check"]["mel_max_abs_diff"] > MEL_TOLERANCE:
            raise SpeechkdError(f"the exported graphs differ from the PyTorch model by "
                                f"{manifest['check']['mel_max_abs_diff']:.2e} (tolerance {MEL_TOLERANCE:g})",
                                path=out, hint="report it: this export is not faithful")
    return manifest


def snr_db(ref: np.ndarray, est: np.ndarray) -> float:
    """10 log10(|ref|^2 / |ref - est|^2)."""
    err = float(np.sum((ref.astype(np.float64) - est) ** 2))
    return float("inf") if err == 0 else 10 * np.log10(float(np.sum(ref.astype(np.float64) ** 2)) / err)


def compare(out: str, lm: LoadedModel, voc: Any, lengths: list[int], seed: int = 1,
            speakers: list[str] | None = None) -> dict[str, float]:
    """The exported dir on onnxruntime vs the PyTorch model on random token sequences of ``lengths``
    (one batch; ``speakers``: the voice of each, multi-speaker models): max |mel diff| (normalised
    mel, with the PyTorch durations), whether the durations agree, and the vocoder's waveform SNR
    on the PyTorch mel."""
    from speechkd.runtime.synth import OnnxSynthesizer  # why: onnxruntime is an optional package

    rt = OnnxSynthesizer(out)
    tokens, lens = _example_tokens(len(lm.token_list), lengths, seed)
    spk = list(speakers) if speakers else [None] * len(lengths)
    noise = None
    with torch.no_grad():
        if lm.name == "diffusion":  # the PyTorch DDIM sampler from the noise the runtime draws
            cond, mel_lens, pred = lm.model.encode(tokens, lens, **lm.speaker_inputs(spk))
            noise = rt.noise(mel_lens.numpy(), seed)
            mask = length_mask(mel_lens, cond.size(1))
            x = lm.model.sample_mel(cond, mask, steps=lm.model.cfg.steps, sampler="ddim",
                                    x_T=torch.from_numpy(noise))
            ref = {"mel": lm.model.denormalize(x) * mask[..., None], "mel_lens": mel_lens,
                   "durations": pred["durations"]}
        else:
            ref = lm.model.inference(tokens, lens, **lm.speaker_inputs(spk))
    ids = [tokens[b, :n].tolist() for b, n in enumerate(lengths)]
    dur = ref["durations"].numpy()
    log_mel, mel_lens, _ = rt.acoustic(ids, durations=dur, speakers=spk, seed=seed)
    _, _, rt_dur = rt.acoustic(ids, speakers=spk)
    ref_log_mel = lm.denormalize(ref["mel"]).numpy()
    mask = (np.arange(log_mel.shape[1])[None, :] < mel_lens[:, None])[..., None]
    res = {"mel_max_abs_diff": float(np.abs((log_mel - ref_log_mel * mask) / np.where(
        lm.feature_config.normalization == "global", lm.mel_std, 1.0)).max()),
        "durations_equal": bool(np.array_equal(rt_dur, dur))}
    if isinstance(voc, Vocos):
        with torch.no_grad():
            wav_ref = voc(torch.from_numpy(ref_log_mel), ref["mel_lens"]).numpy()
        wav = rt.vocode(ref_log_mel, ref["mel_lens"].numpy())
        res["vocoder_snr_db"] = round(float(snr_db(wav_ref, wav)), 2)
    return res


def check_export(out: str, lm: LoadedModel, voc: Any) -> dict[str, float]:
    known = lm.speakers.known if lm.multi_speaker else []
    # a multi-speaker model: the first and last voice in one batch (rows and embeddings differ per item)
    return compare(out, lm, voc, [23, 7, 2], speakers=[known[0], known[-1], known[0]] if known else None)
