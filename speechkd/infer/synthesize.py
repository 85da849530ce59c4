"""Text -> waveform with a trained acoustic model and a vocoder: the library behind ``speechkd synth``.

    from speechkd.infer.synthesize import Synthesizer
    synth = Synthesizer.from_exp("exp/fastspeech2", vocoder="griffin_lim", device="auto")
    wav, sr = synth("The goat butted the hiker with his horns.", speed=1.0)
    synth.speakers                                   # a multi-speaker model's voices (table order)
    wav, sr = synth("The goat butted the hiker.", speaker="awb")

Pipeline: text -> tokens with the frontend the model was trained with (kept in the checkpoint,
or ``frontend.yaml`` beside the training token list for older checkpoints) -> ids (an unknown
symbol is an error naming it, or ``<unk>`` with ``on_unknown="map"``) -> ``model.inference``
(normalised mel) -> the training statistics undo the normalisation -> vocoder -> waveform.

The acoustic model's FeatureConfig and the vocoder's must agree on every mel field
(:data:`speechkd.features.config.MEL_FIELDS`), else :class:`FeatureMismatchError` names the
differing fields: the most common silent failure of TTS toolkits is a vocoder fed mels of another
definition. Prosody controls are passed only to models that take them: ``speed`` (2.0 = twice as
fast, durations halved), ``pitch_scale`` and ``energy_scale`` (models with a variance adaptor);
anything else is refused with a message naming the model.

A multi-speaker model speaks with the voice asked for (``speaker=``, one per utterance in
:meth:`Synthesizer.batch`); without one it refuses, naming its speakers, rather than pick a voice
the user did not ask for. Single-speaker models ignore the speaker.
"""

from __future__ import annotations

import inspect
import logging
import os
import time
from typing import Callable, Literal, Sequence

import numpy as np
import torch

from speechkd.checkpoints import LoadedModel, load_model, load_vocoder, resolve_device
from speechkd.config import from_dict, load_config
from speechkd.errors import ConfigError, SpeechkdError
from speechkd.features.config import MEL_FIELDS, check_compatible
from speechkd.models.diffusion_sampling import sampling_grid
from speechkd.models.vocoders import Vocoder
from speechkd.runtime.dsp import utterance_waves
from speechkd.runtime.synth import TextSynthesizer, Utterance
from speechkd.text.frontend import Frontend, encode_texts
from speechkd.text.tokens import TokenList
from speechkd.utils.batching import length_sorted_batches

logger = logging.getLogger(__name__)

FRONTEND_FILE = "frontend.yaml"
# Prosody controls: keyword of model.inference -> the CLI option that sets it.
CONTROLS = {"speed": "--speed", "pitch_scale": "--pitch-scale", "energy_scale": "--energy-scale"}


def resolve_frontend(loaded: LoadedModel, exp_dir: str, frontend: str | Frontend | None = None) -> Frontend:
    """The model's text frontend: given explicitly (a Frontend or a YAML path), embedded in the
    checkpoint, or ``frontend.yaml`` beside the training token list (its path in the config is
    tried as is, then relative to the recipe dir two levels above ``exp/<tag>``)."""
    if isinstance(frontend, Frontend):
        return frontend
    if frontend:
        return load_config(Frontend, frontend)
    if loaded.frontend:
        return from_dict(Frontend, loaded.frontend, source=f"{loaded.path} (embedded frontend)")
    tl = loaded.token_list_path
    exp_abs = os.path.abspath(exp_dir if os.path.isdir(exp_dir) else os.path.dirname(os.path.dirname(exp_dir)))
    for root in ("", os.path.dirname(os.path.dirname(exp_abs))):
        path = os.path.join(root, os.path.dirname(tl), FRONTEND_FILE) if tl else ""
        if path and os.path.exists(path):
            beside = os.path.join(os.path.dirname(path), os.path.basename(tl))
            if os.path.exists(beside) and TokenList.load(beside) != loaded.token_list:
                logger.warning("%s differs from the checkpoint's token list; using its frontend.yaml anyway",
                               beside)
            return load_config(Frontend, path)
    raise SpeechkdError("the checkpoint holds no text frontend and no frontend.yaml was found beside its "
                        f"training token list {tl!r}", path=loaded.path,
                        hint="pass the frontend.yaml the token list was built with (--frontend FILE)")


class Synthesizer(TextSynthesizer):
    """Text -> (waveform, sample rate); see the module docstring."""

    def __init__(self, loaded: LoadedModel, vocoder: Vocoder, frontend: Frontend, *, device: str = "cpu",
                 on_unknown: Literal["error", "map"] = "error", vocoder_name: str = ""):
        self.loaded, self.model, self.vocoder, self.frontend = loaded, loaded.model, vocoder, frontend
        self.device, self.on_unknown, self.vocoder_name = device, on_unknown, vocoder_name
        self.feature_config = loaded.feature_config
        self.sample_rate = loaded.feature_config.sample_rate
        check_compatible(loaded.feature_config, vocoder.feature_config, f"acoustic model {loaded.path}",
                         f"vocoder {vocoder_name or type(vocoder).__name__}", only=MEL_FIELDS,
                         hint="use a vocoder trained on features of the same definition, or griffin_lim")
        self.inference_params = set(inspect.signature(self.model.inference).parameters)
        self.model_options: dict = {}  # further model.inference keywords, e.g. a diffusion model's steps

    def set_steps(self, steps: int) -> None:
        """Sample a diffusion model with ``steps`` denoiser passes (a sub-grid of its own N)."""
        if "steps" not in self.inference_params:
            raise ConfigError(f"model {self.loaded.name!r} has no sampler steps", field="--steps",
                              hint="--steps applies to diffusion models")
        sampling_grid(self.model.cfg.steps, steps)  # must divide the model's N
        self.model_options["steps"] = int(steps)

    @classmethod
    def from_exp(cls, path: str, vocoder: str = "griffin_lim", device: str = "auto", *,
                 on_unknown: Literal["error", "map"] = "error", frontend: str | Frontend | None = None,
                 vocoder_options: dict | None = None, average: int = 1) -> "Synthesizer":
        """Load ``exp/<tag>`` (or a ``.ckpt``; ``average`` > 1: the mean weights of its last N
        checkpoints) and a vocoder (a registered name or an exp dir)."""
        device = resolve_device(device)
        if not os.path.exists(path):
            raise SpeechkdError("experiment dir does not exist", path=path, field="--model",
                                hint="give a trained exp dir such as exp/fastspeech2 (ls exp/)")
        loaded = load_model(path, device, average=average)
        fe = resolve_frontend(loaded, path, frontend)
        voc = load_vocoder(vocoder, loaded.feature_config, device, vocoder_options)
        return cls(loaded, voc, fe, device=device, on_unknown=on_unknown, vocoder_name=vocoder)

    # ---- text ---------------------------------------------------------------------------------
    def token_ids(self, texts: Sequence[str], utts: Sequence[str]) -> list[list[int] | SpeechkdError]:
        """Ids of each text, or the error that text causes (empty, no tokens, unknown symbols)."""
        return encode_texts(self.frontend, self.loaded.token_list, texts, utts, self.on_unknown)

    # ---- speakers -----------------------------------------------------------------------------
    @property
    def speakers(self) -> list[str]:
        """The voices of a multi-speaker model (table order); [] for a single-speaker model."""
        return list(self.loaded.speakers.ids) if self.loaded.multi_speaker else []

    def check_speakers(self, speakers: Sequence[str | None], utts: Sequence[str] | None = None) -> None:
        """Refuse an unknown speaker, or none for a multi-speaker model, before any work."""
        self.loaded.speaker_inputs(list(speakers), utts)

    # ---- synthesis ----------------------------------------------------------------------------
    def check_controls(self, speed: float, pitch_scale: float, energy_scale: float) -> dict[str, float]:
        """The prosody keywords for model.inference; a non-default control the model lacks is an error."""
        kw = {}
        # pitch/energy only where the model says it has a variance adaptor (FastSpeech shares
        # FastSpeech 2's inference signature without one)
        variances = self.model.has_variances
        for name, value in (("speed", speed), ("pitch_scale", pitch_scale), ("energy_scale", energy_scale)):
            if not value > 0:
                raise ConfigError(f"{CONTROLS[name]} must be > 0, got {value}", field=CONTROLS[name])
            if name in self.inference_params and (name == "speed" or variances):
                kw[name] = float(value)
            elif value != 1.0:
                why = ("an autoregressive model's length comes from its stop token"
                       if name == "speed" else "it has no variance adaptor")
                raise ConfigError(f"model {self.loaded.name!r} does not support {CONTROLS[name]} ({why})",
                                  field=CONTROLS[name], hint="leave it at 1.0, or use a model that has "
                                                             "it: fastspeech2 takes all three")
        return kw

    @torch.no_grad()
    def synthesize_ids(self, ids: list[list[int]], *, speed: float = 1.0, pitch_scale: float = 1.0,
                       energy_scale: float = 1.0, seed: int | None = None,
                       speakers: Sequence[str | None] | None = None) -> list[tuple[np.ndarray, int, bool]]:
        """Waveforms of a batch of id sequences: ``(wav float32, frames, stopped)`` each;
        ``speakers``: the voice of each (multi-speaker models)."""
        kw = {**self.check_controls(speed, pitch_scale, energy_scale), **self.model_options,
              **self.loaded.speaker_inputs(list(speakers or [None] * len(ids)), device=self.device)}
        if seed is not None:
            torch.manual_seed(seed)
            if "generator" in self.inference_params:  # e.g. the AR teacher's always-on prenet dropout
                kw["generator"] = torch.Generator(device=self.device).manual_seed(seed)
        lens = torch.tensor([len(x) for x in ids], dtype=torch.long, device=self.device)
        tokens = torch.zeros(len(ids), int(lens.max()), dtype=torch.long, device=self.device)
        for b, x in enumerate(ids):
            tokens[b, :len(x)] = torch.tensor(x, dtype=torch.long)
        out = self.model.inference(tokens, lens, **kw)
        mel_lens = out["mel_lens"].long()
        log_mel = self.loaded.denormalize(out["mel"].float())
        wav = self.vocoder(log_mel, mel_lens)
        wav = wav.float().cpu().numpy() if isinstance(wav, torch.Tensor) else np.asarray(wav, np.float32)
        stopped = out.get("stopped")
        waves = utterance_waves(wav, mel_lens, self.feature_config.hop_length)
        return [(w, int(mel_lens[b]), True if stopped is None else bool(stopped[b])) for b, w in enumerate(waves)]

    def batch(self, texts: Sequence[str], utts: Sequence[str] | None = None, *, batch_size: int = 1,
              speed: float = 1.0, pitch_scale: float = 1.0, energy_scale: float = 1.0,
              seed: int | None = None, on_done: Callable[[Utterance], None] | None = None,
              speakers: str | Sequence[str | None] | None = None) -> list[Utterance]:
        """Synthesize many texts, ``batch_size`` at a time (sorted by length to limit padding). A bad
        text does not stop the others: its :class:`Utterance` carries the error instead of a wav.
        ``seed`` reseeds before every batch, so an utterance's audio does not depend on the ones
        before it (with batch_size 1, not on the others at all). ``on_done`` sees each result as it
        is ready (the CLI writes wavs there). ``speakers``: one voice for all, or one per text
        (multi-speaker models)."""
        results = self.open_batch(texts, utts, speakers, batch_size, speed, pitch_scale, energy_scale)
        for chunk in length_sorted_batches(results, self.token_ids(list(texts), [r.utt for r in results]),
                                           batch_size, on_done):
            t0 = time.perf_counter()
            outs = self.synthesize_ids([x for _, x in chunk], speed=speed, pitch_scale=pitch_scale,
                                       energy_scale=energy_scale, seed=seed,
                                       speakers=[r.speaker or None for r, _ in chunk])
            if self.device.startswith("cuda"):
                torch.cuda.synchronize()
            dt = time.perf_counter() - t0
            for (r, _), (w, n, stopped) in zip(chunk, outs):
                r.wav, r.frames, r.stopped, r.synth_seconds, r.batch_size = w, n, stopped, dt, len(chunk)
                if not stopped:
                    logger.warning("utterance '%s': the model hit its maximum length without a stop token", r.utt)
                if on_done:
                    on_done(r)
        return results
