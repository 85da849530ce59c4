"""Text -> waveform from an exported dir (:mod:`speechkd.runtime.bundle`) on onnxruntime and numpy.

The same pipeline as :class:`speechkd.infer.synthesize.Synthesizer`, without torch:

    text -> frontend -> ids -> encoder.onnx -> h, log(d + 1)
         -> d = clip(round((exp(p) - 1) / speed), 1, max_token_frames)     (FastSpeech sec. 3.3)
         -> length regulator: h_s repeated d_s times (numpy)               (FastSpeech sec. 3.2)
         -> decoder.onnx -> mel -> denormalise -> vocoder.onnx + inverse STFT (or Griffin-Lim)

A diffusion student's decoder.onnx is its k-step DDIM sampler unrolled; it takes the noise x_T,
drawn here per utterance from ``numpy.random.default_rng(seed)`` (``--seed``, default 0).

Importing this module imports neither torch nor Lightning (a test checks it), so a cold
``speechkd synth --model DIR`` pays only for numpy, onnxruntime and the frontend.
"""

from __future__ import annotations

import importlib
import logging
import os
import re
import time
from dataclasses import dataclass
from typing import Callable, Iterator, Literal, Sequence

import numpy as np

from speechkd.config import load_config
from speechkd.data.speakers import check_speaker_names
from speechkd.errors import ConfigError, SpeechkdError
from speechkd.features.config import FeatureConfig
from speechkd.runtime import bundle
from speechkd.runtime.dsp import griffin_lim, istft, periodic_window, utterance_waves
from speechkd.text.frontend import Frontend, encode_texts, normalize_text
from speechkd.text.tokens import TokenList
from speechkd.utils.batching import length_sorted_batches

logger = logging.getLogger(__name__)


@dataclass
class Utterance:
    """One synthesized utterance of either synthesizer (``wav`` None and ``error`` set when it failed)."""

    utt: str
    text: str
    wav: np.ndarray | None = None
    frames: int = 0
    synth_seconds: float = 0.0  # wall time of the batch that produced it (batch_size 1: of this utterance)
    batch_size: int = 1
    stopped: bool = True  # False: an autoregressive model hit its maximum length without a stop token
    error: str | None = None
    path: str = ""  # where a caller wrote it (the CLI's manifest)
    speaker: str = ""  # the voice it was spoken with (multi-speaker models)


def split_sentences(text: str) -> list[str]:
    """The sentences of ``text``, split after . ! ? once the frontend's normalisation has expanded
    abbreviations (so "Dr. Smith" stays in one sentence)."""
    return [s for s in re.split(r"(?<=[.!?])\s+", normalize_text(text)) if s.strip()]


def _session(path: str, threads: int):
    import onnxruntime as ort  # why: an optional package (the runtime extra); its absence is one error line

    opts = ort.SessionOptions()
    if threads > 0:
        opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3  # warnings about unused initialisers are not the user's concern
    try:
        return ort.InferenceSession(path, sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own classes for a damaged or foreign graph
        raise SpeechkdError(f"onnxruntime cannot load it ({' '.join(str(e).split())[:200]})", path=path,
                            hint="export the model again") from None


def require_onnxruntime() -> None:
    try:
        importlib.import_module("onnxruntime")  # why: the optional runtime extra; checked before any work
    except ImportError:
        raise SpeechkdError("onnxruntime is not installed", hint="pip install 'speechkd[runtime]'") from None


class TextSynthesizer:
    """What the PyTorch :class:`speechkd.infer.synthesize.Synthesizer` and :class:`OnnxSynthesizer`
    share above their models: one text -> ``(wav, sr)``, and the checks that open a batch. A subclass
    gives ``speakers``, ``sample_rate``, ``check_controls``, ``check_speakers``, ``token_ids`` (ids,
    or the SpeechkdError of a bad text) and ``synthesize_ids``."""

    speakers: list[str]
    sample_rate: int

    def __call__(self, text: str, *, speed: float = 1.0, pitch_scale: float = 1.0, energy_scale: float = 1.0,
                 seed: int | None = None, speaker: str | None = None) -> tuple[np.ndarray, int]:
        """``(wav float32 in [-1, 1], sample rate)`` of one text, spoken by ``speaker`` (one of
        :attr:`speakers`; multi-speaker models); a bad text or speaker raises SpeechkdError."""
        self.check_speakers([speaker])
        ids = self.token_ids([text], ["<text>"])[0]
        if isinstance(ids, SpeechkdError):
            raise ids
        return self.synthesize_ids([ids], speed=speed, pitch_scale=pitch_scale, energy_scale=energy_scale,
                                   seed=seed, speakers=[speaker])[0][0], self.sample_rate

    def open_batch(self, texts: Sequence[str], utts: Sequence[str] | None, speakers: str | Sequence[str | None] | None,
                   batch_size: int, speed: float, pitch_scale: float, energy_scale: float) -> list[Utterance]:
        """An :class:`Utterance` per text (ids utt0001, ... when none are given), each with its voice;
        bad settings, controls or speakers refused before any work."""
        if batch_size < 1:
            raise ConfigError(f"--batch-size must be >= 1, got {batch_size}", field="--batch-size")
        self.check_controls(speed, pitch_scale, energy_scale)
        utts = list(utts) if utts is not None else [f"utt{i + 1:04d}" for i in range(len(texts))]
        spk = [speakers] * len(texts) if speakers is None or isinstance(speakers, str) else list(speakers)
        if len(spk) != len(texts):
            raise ConfigError(f"{len(spk)} speakers for {len(texts)} texts", field="speakers")
        self.check_speakers(spk, utts)
        return [Utterance(u, t, speaker=(s or "") if self.speakers else "") for u, t, s in zip(utts, texts, spk)]


class OnnxSynthesizer(TextSynthesizer):
    """An exported model: ``synth(text) -> (wav, sr)``, :meth:`batch` as the torch Synthesizer."""

    def __init__(self, path: str, *, threads: int = 0, on_unknown: Literal["error", "map"] = "error",
                 griffin_lim_iters: int | None = None):
        require_onnxruntime()
        self.path = os.fspath(path)
        man = self.manifest = bundle.read_manifest(self.path)
        j = lambda name: os.path.join(self.path, name)  # noqa: E731
        self.name, self.step = str(man["model"]), int(man.get("source", {}).get("step", 0))
        self.speakers = list(man["speakers"])  # [] for a single-speaker model
        self.speaker_inputs_info = dict(man.get("speaker_inputs") or {})
        self.max_tokens, self.max_frames = int(man["max_tokens"]), int(man["max_frames"])
        self.max_token_frames = int(man["max_token_frames"])
        self.controls = set(man.get("controls", ["speed"]))
        self.diffusion = dict(man.get("diffusion") or {})  # a diffusion student: its decoder takes x_T
        self.token_list = TokenList.load(j(bundle.TOKENS))
        self.frontend = load_config(Frontend, j(bundle.FRONTEND))
        self.feature_config = FeatureConfig.load(j(bundle.FEATURES))
        with np.load(j(bundle.MEL_STATS), allow_pickle=False) as z:
            self.mel_mean, self.mel_std = z["mel_mean"].astype(np.float32), z["mel_std"].astype(np.float32)
        self.on_unknown = on_unknown
        self.encoder = _session(j(bundle.ENCODER), threads)
        self.decoder = _session(j(bundle.DECODER), threads)
        self.voc = dict(man["vocoder"])
        fc = self.feature_config
        if self.voc.get("kind") == "vocos":
            self.vocoder = _session(j(bundle.VOCODER), threads)
            self.n_fft = int(self.voc["n_fft"])
        elif self.voc.get("kind") == "griffin_lim":
            with np.load(j(bundle.GRIFFIN_LIM), allow_pickle=False) as z:
                self.inv_basis = z["inv_basis"].astype(np.float32)
            self.n_fft = fc.n_fft
            if griffin_lim_iters is not None:
                self.voc["n_iter"] = griffin_lim_iters
        else:
            raise SpeechkdError(f"unknown vocoder kind {self.voc.get('kind')!r}", path=self.path, field="vocoder")
        self.window = periodic_window(fc.window, fc.win_length)
        self.sample_rate = fc.sample_rate
        self.device = "onnxruntime-cpu"

    # ---- text ---------------------------------------------------------------------------------
    def token_ids(self, texts: Sequence[str], utts: Sequence[str]) -> list[list[int] | SpeechkdError]:
        """Ids of each text, or the error that text causes (empty, no tokens, unknown symbols, too long)."""
        out = encode_texts(self.frontend, self.token_list, texts, utts, self.on_unknown)
        for i, ids in enumerate(out):
            if not isinstance(ids, SpeechkdError) and len(ids) > self.max_tokens:
                out[i] = SpeechkdError(f"{len(ids)} tokens, more than the exported graph's {self.max_tokens}",
                                       utt=utts[i], field="text", hint="split the text into sentences")
        return out

    # ---- speakers -----------------------------------------------------------------------------
    def check_speakers(self, names: Sequence[str | None], utts: Sequence[str] | None = None) -> None:
        """Refuse an unknown speaker, or none for a multi-speaker model, before any work (the
        messages of :meth:`speechkd.checkpoints.LoadedModel.speaker_inputs`)."""
        if not self.speakers:
            return
        check_speaker_names(names, self.speakers, utts=utts, path=self.path)

    def speaker_feeds(self, names: Sequence[str | None]) -> dict[str, np.ndarray]:
        """The encoder's speaker inputs for one voice per utterance ({} for a single-speaker model)."""
        if not self.speakers:
            return {}
        self.check_speakers(names)
        si, out = self.speaker_inputs_info, {}
        if si.get("table"):
            out["spk"] = np.array([si["rows"][n] for n in names], np.int64)
        if si.get("embed_dim"):
            out["spk_emb"] = np.array([si["embeddings"][n] for n in names], np.float32)
        return out

    # ---- synthesis ----------------------------------------------------------------------------
    def check_controls(self, speed: float, pitch_scale: float, energy_scale: float) -> None:
        for flag, value in (("--speed", speed), ("--pitch-scale", pitch_scale), ("--energy-scale", energy_scale)):
            if not value > 0:
                raise ConfigError(f"{flag} must be > 0, got {value}", field=flag)
        for flag, value in (("--pitch-scale", pitch_scale), ("--energy-scale", energy_scale)):
            if value != 1.0:
                raise ConfigError(f"the exported {self.name} graph has {flag} fixed at 1.0", field=flag,
                                  hint="leave it at 1.0, or synthesise with the PyTorch exp dir")

    def durations(self, log_d: np.ndarray, lens: np.ndarray, speed: float) -> np.ndarray:
        """Frames per token ``[B, S]`` int64 from log(d + 1): as ``durations_from_log`` (float32 exp,
        round half to even, at least 1 and at most max_token_frames per real token, 0 on padding)."""
        d = np.round(np.maximum(np.exp(log_d.astype(np.float32)) - np.float32(1.0), 0.0) / np.float32(speed))
        mask = np.arange(log_d.shape[1])[None, :] < lens[:, None]
        return np.clip(d, 1, self.max_token_frames).astype(np.int64) * mask

    def noise(self, mel_lens: np.ndarray, seed: int | None = None) -> np.ndarray:
        """A diffusion student's x_T ``[B, T, n_mels]``: each utterance's own standard normal draw of its
        length from ``numpy.random.default_rng(seed)`` (so its audio does not depend on the batch), zero
        past it."""
        out = np.zeros((len(mel_lens), int(mel_lens.max()), self.feature_config.n_mels), np.float32)
        for b, n in enumerate(mel_lens):
            out[b, :n] = np.random.default_rng(seed or 0).standard_normal((int(n), out.shape[2]), np.float32)
        return out

    def acoustic(self, ids: list[list[int]], speed: float = 1.0, durations: np.ndarray | None = None,
                 speakers: Sequence[str | None] | None = None, seed: int | None = None,
                 noise: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Raw log-mel ``[B, T, n_mels]`` (denormalised, zero past each length), ``mel_lens [B]`` and the
        durations ``[B, S]`` of a batch of id sequences (``durations`` given: used instead of predicted;
        ``speakers``: the voice of each, multi-speaker models; a diffusion student samples from
        ``noise``, by default :meth:`noise` of ``seed``)."""
        lens = np.array([len(x) for x in ids], np.int64)
        tokens = np.zeros((len(ids), int(lens.max())), np.int64)
        for b, x in enumerate(ids):
            tokens[b, :len(x)] = x
        feeds = {"tokens": tokens, "token_lens": lens,
                 **self.speaker_feeds(list(speakers) if speakers is not None else [None] * len(ids))}
        h, log_d = self.encoder.run(None, feeds)
        d = self.durations(log_d, lens, speed) if durations is None else np.asarray(durations, np.int64)
        mel_lens = d.sum(1)
        t_max = int(mel_lens.max())
        if t_max > self.max_frames:
            raise SpeechkdError(f"{t_max} frames, more than the exported graph's {self.max_frames}", field="text",
                                hint="split the text into sentences, or speak faster (--speed)")
        frames = np.zeros((len(ids), t_max, h.shape[2]), np.float32)
        for b in range(len(ids)):  # the length regulator
            n = int(lens[b])
            frames[b, :mel_lens[b]] = np.repeat(h[b, :n], d[b, :n], axis=0)
        feeds = {"frames": frames, "mel_lens": mel_lens}
        if self.diffusion:
            feeds["noise"] = self.noise(mel_lens, seed) if noise is None else np.asarray(noise, np.float32)
        (mel,) = self.decoder.run(None, feeds)
        if self.feature_config.normalization == "global":
            mask = (np.arange(t_max)[None, :] < mel_lens[:, None])[..., None]
            mel = (mel * self.mel_std + self.mel_mean) * mask
        return mel.astype(np.float32), mel_lens, d

    def vocode(self, log_mel: np.ndarray, mel_lens: np.ndarray, seed: int = 0) -> np.ndarray:
        """Waveforms ``[B, N]`` of raw log-mels ``[B, T, n_mels]``, zero past each (length - 1) * hop."""
        fc = self.feature_config
        floor = float(np.log(fc.log_floor) if fc.log_base == "e" else np.log10(fc.log_floor))
        t = log_mel.shape[1]
        pad = np.arange(t)[None, :] >= mel_lens[:, None]
        if self.voc["kind"] == "vocos":
            x = np.where(pad[..., None], np.float32(floor), log_mel).astype(np.float32)
            (spec,) = self.vocoder.run(None, {"log_mel": x})
            spec = spec[..., 0] + 1j * spec[..., 1]
            n = (t - 1) * fc.hop_length
            if not fc.center and fc.pad:  # HiFi-GAN framing: invert centred, delay by n_fft/2 - pad (as VocosGenerator)
                wav = istft(spec, self.n_fft, fc.hop_length, self.window, True, n)
                wav = np.pad(wav, ((0, 0), (self.n_fft // 2 - fc.pad, 0)))[:, :n]
            else:
                n = n if fc.center else n + self.n_fft
                wav = istft(spec, self.n_fft, fc.hop_length, self.window, fc.center, n)
            keep = np.arange(wav.shape[1])[None, :] < ((mel_lens - 1) * fc.hop_length)[:, None]
            return wav * keep
        mel = np.exp(log_mel) if fc.log_base == "e" else np.power(10.0, log_mel)
        mag = np.maximum(np.einsum("fm,btm->bft", self.inv_basis, mel), 0.0)
        if fc.power != 1.0:
            mag = mag ** (1.0 / fc.power)
        if self.voc.get("power", 1.0) != 1.0:
            mag = mag ** float(self.voc["power"])
        mag = mag * ~pad[:, None, :]
        center = fc.center or fc.pad > 0
        n = (t - 1) * fc.hop_length if center else (t - 1) * fc.hop_length + fc.n_fft
        wav = griffin_lim(mag, fc.n_fft, fc.hop_length, self.window, center, n, n_iter=int(self.voc["n_iter"]),
                          momentum=float(self.voc["momentum"]), seed=seed)
        if not fc.center and fc.pad:
            shift = fc.n_fft // 2 - fc.pad
            wav = np.pad(wav, ((0, 0), (shift, fc.hop_length - shift)))
        return wav

    def synthesize_ids(self, ids: list[list[int]], *, speed: float = 1.0, pitch_scale: float = 1.0,
                       energy_scale: float = 1.0, seed: int | None = None,
                       speakers: Sequence[str | None] | None = None) -> list[tuple[np.ndarray, int, bool]]:
        """Waveforms of a batch of id sequences: ``(wav float32, frames, True)`` each; ``speakers``:
        the voice of each (multi-speaker models)."""
        self.check_controls(speed, pitch_scale, energy_scale)
        log_mel, mel_lens, _ = self.acoustic(ids, speed, speakers=speakers, seed=seed)
        wav = self.vocode(log_mel, mel_lens, seed or 0)
        waves = utterance_waves(wav, mel_lens, self.feature_config.hop_length)
        return [(w, int(n), True) for w, n in zip(waves, mel_lens)]

    def sentence_ids(self, text: str) -> list[list[int]]:
        """Ids of each sentence of ``text`` (:func:`split_sentences`); the first bad one raises."""
        sentences = split_sentences(text)
        if not sentences:
            raise SpeechkdError("empty text", field="text", hint="give a sentence")
        out = []
        for i, x in enumerate(self.token_ids(sentences, [f"sentence {i + 1}" for i in range(len(sentences))])):
            if isinstance(x, SpeechkdError):
                raise x
            out.append(x)
        return out

    # ---- streaming ----------------------------------------------------------------------------
    @property
    def chunkable(self) -> bool:
        """Whether the vocoder can run on mel chunks (Vocos: a finite receptive field; Griffin-Lim's
        phase estimate is global, so it vocodes each sentence whole)."""
        return self.voc["kind"] == "vocos"

    def vocoder_context(self) -> int:
        """Frames of context each side of a chunk that make chunked vocoding equal whole vocoding:
        the vocoder network's receptive half-width (``receptive_frames``, from the export) plus the
        frames whose iSTFT windows reach into the chunk (n_fft / hop, which covers the HiFi-GAN
        framing's delay too), plus one."""
        rf = int(self.voc.get("receptive_frames", 32))  # exports that predate the field: Vocos' default 27, rounded up
        return rf + -(-self.n_fft // self.feature_config.hop_length) + 1

    def vocode_chunks(self, log_mel: np.ndarray, chunk_frames: int,
                      context: int | None = None) -> Iterator[np.ndarray]:
        """The waveform of one raw log-mel ``[T, n_mels]`` in pieces of ``chunk_frames * hop`` samples
        (the last one shorter), by overlap-discard: chunk ``[a, b)`` is vocoded with ``context`` frames
        either side (default :meth:`vocoder_context`) and only its own samples ``[a*hop, b*hop)`` are
        kept, so the pieces joined are whole-utterance vocoding up to float rounding (a test measures
        it). The first piece costs one chunk of vocoding, not the whole utterance."""
        if not self.chunkable:
            raise SpeechkdError("Griffin-Lim vocodes a sentence whole (its phase estimate is global)",
                                path=self.path, field="chunk_frames", hint="chunk_frames=0")
        if chunk_frames < 1:
            raise ConfigError(f"chunk_frames must be >= 1, got {chunk_frames}", field="chunk_frames")
        t, hop = log_mel.shape[0], self.feature_config.hop_length
        c = self.vocoder_context() if context is None else context
        if c < 1:  # T frames vocode to (T - 1) * hop samples: a chunk needs the next frame to end
            raise ConfigError(f"context must be >= 1 frame, got {c}", field="context")
        for a in range(0, t, chunk_frames):
            b = min(a + chunk_frames, t)
            lo, hi = max(0, a - c), min(t, b + c)
            wav = self.vocode(log_mel[None, lo:hi], np.array([hi - lo], np.int64))[0]
            piece = wav[(a - lo) * hop:(b - lo) * hop if b < t else len(wav)]
            if len(piece):
                yield piece

    def stream_ids(self, ids: list[int], *, speed: float = 1.0, seed: int | None = None,
                   speaker: str | None = None, chunk_frames: int = 0) -> Iterator[np.ndarray]:
        """One sentence's waveform: whole (``chunk_frames`` 0, or Griffin-Lim), or in pieces of
        ``chunk_frames`` mel frames vocoded as soon as the acoustic model has run (Vocos). Pieces are
        clipped to [-1, 1] where the whole waveform would be scaled down: the peak is not known yet."""
        if chunk_frames <= 0 or not self.chunkable:
            yield self.synthesize_ids([ids], speed=speed, seed=seed, speakers=[speaker])[0][0]
            return
        self.check_controls(speed, 1.0, 1.0)
        log_mel, mel_lens, _ = self.acoustic([ids], speed, speakers=[speaker], seed=seed)
        for piece in self.vocode_chunks(log_mel[0, :int(mel_lens[0])], chunk_frames):
            yield np.clip(piece, -1.0, 1.0).astype(np.float32)

    def stream(self, text: str, *, speed: float = 1.0, seed: int | None = None, speaker: str | None = None,
               chunk_frames: int = 0) -> Iterator[np.ndarray]:
        """Waveforms of ``text`` sentence by sentence, each yielded as soon as it is synthesised (the
        text and speaker are checked whole first, so a bad sentence fails before any audio); with
        ``chunk_frames`` > 0 each sentence in pieces of that many mel frames (:meth:`stream_ids`)."""
        self.check_speakers([speaker])
        for ids in self.sentence_ids(text):
            yield from self.stream_ids(ids, speed=speed, seed=seed, speaker=speaker, chunk_frames=chunk_frames)

    def batch(self, texts: Sequence[str], utts: Sequence[str] | None = None, *, batch_size: int = 1,
              speed: float = 1.0, pitch_scale: float = 1.0, energy_scale: float = 1.0,
              seed: int | None = None, on_done: Callable[[Utterance], None] | None = None,
              speakers: str | Sequence[str | None] | None = None) -> list[Utterance]:
        """Many texts, ``batch_size`` at a time (sorted by length); a bad text carries its error instead
        of a wav and does not stop the others (the torch Synthesizer's contract). ``speakers``: one
        voice for all, or one per text (multi-speaker models)."""
        results = self.open_batch(texts, utts, speakers, batch_size, speed, pitch_scale, energy_scale)
        for chunk in length_sorted_batches(results, self.token_ids(list(texts), [r.utt for r in results]),
                                           batch_size, on_done):
            t0 = time.perf_counter()
            try:
                outs = self.synthesize_ids([x for _, x in chunk], speed=speed, seed=seed,
                                           speakers=[r.speaker or None for r, _ in chunk])
            except SpeechkdError as e:  # too many frames: the batch's utterances fail, the others go on
                for r, _ in chunk:
                    r.error = str(e)
                    if on_done:
                        on_done(r)
                continue
            dt = time.perf_counter() - t0
            for (r, _), (w, n, stopped) in zip(chunk, outs):
                r.wav, r.frames, r.stopped, r.synth_seconds, r.batch_size = w, n, stopped, dt, len(chunk)
                if on_done:
                    on_done(r)
        return results
