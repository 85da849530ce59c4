"""Reading speechkd checkpoints without Lightning: acoustic models, vocoders, and the pieces the SE
loader (:mod:`speechkd.enhance.exp`) builds on.

A checkpoint is what Lightning's ``trainer.save_checkpoint`` pickles: a dict with ``state_dict``,
``global_step`` and our ``"speechkd"`` entry (kind, resolved config, token list, FeatureConfig,
feature statistics, code version), all plain values and tensors. Reading it needs only torch, so
inference (``speechkd synth``, ``vocode``, ``enhance``) never imports Lightning. Every read uses
``torch.load(weights_only=True)``: a checkpoint is untrusted input, and a pickle that names any
other class is refused before anything of it runs. The writer side (atomic checkpoints, the
metrics logger) lives with the trainers in :mod:`speechkd.train.exp`.
"""

from __future__ import annotations

import glob
import logging
import os
import pickle
import re
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch

from speechkd.config import from_dict
from speechkd.data.speakers import Speakers, check_speaker_names
from speechkd.errors import ConfigError, SpeechkdError
from speechkd.features.config import MEL_FIELDS, FeatureConfig, check_compatible
from speechkd.models import AcousticModel, get_model_class
from speechkd.models.vocoders import GENERATORS, PRETRAINED, VOCODERS, Vocoder, build_vocoder, load_pretrained
from speechkd.models.vocoders.vocos import Vocos
from speechkd.text.tokens import TokenList

logger = logging.getLogger(__name__)

CKPT_DIR = "checkpoints"
LAST = "last.ckpt"
TRAINERS = {None: "speechkd train", "vocoder": "speechkd train-vocoder (recipe stage 9)", "se": "speechkd se-train"}


def resolve_checkpoint(exp_or_ckpt: str, trainer: str = "speechkd train") -> str:
    """``exp/<tag>`` -> its checkpoints/last.ckpt; a ``.ckpt`` path is returned as is.
    ``trainer`` names the command that writes such exp dirs (for the hint)."""
    if os.path.isdir(exp_or_ckpt):
        path = os.path.join(exp_or_ckpt, CKPT_DIR, LAST)
        if not os.path.exists(path):
            raise SpeechkdError("experiment has no checkpoint", path=exp_or_ckpt,
                                hint=f"train it first ({trainer}) or pass a .ckpt path")
        return path
    if not os.path.exists(exp_or_ckpt):
        raise SpeechkdError("exp dir or checkpoint does not exist", path=exp_or_ckpt)
    return exp_or_ckpt


def load_weights_only(path: str) -> Any:
    """``torch.load`` restricted to tensors and plain containers; any other pickled object (which
    could run code while unpickling) is a one-line :class:`SpeechkdError`."""
    if os.path.isdir(path):
        raise SpeechkdError("is a directory, not a checkpoint file", path=path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        bad = [ln.strip() for ln in str(e).splitlines() if "Unsupported global" in ln]
        if bad:  # a class or function the pickle would call: what an attack looks like
            what = bad[0].split(" was not")[0].replace("WeightsUnpickler error: ", "")
            raise SpeechkdError(f"refused: the file pickles objects other than tensors and plain values ({what})",
                                path=path, hint="only load checkpoints written by speechkd's trainers") from None
        raise SpeechkdError(f"cannot read checkpoint ({_first_line(e)})", path=path) from None
    except Exception as e:  # noqa: BLE001 - any unreadable file is the same user error
        raise SpeechkdError(f"cannot read checkpoint ({type(e).__name__}: {_first_line(e)})", path=path) from None


def _first_line(e: Exception) -> str:
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip() and "Weights only load failed" not in ln]
    return lines[-1] if lines else type(e).__name__


def read_checkpoint(path: str, kind: str | None = None, trainer: str | None = None) -> dict:
    """A speechkd checkpoint as a dict; one-line errors for an unreadable or unsafe file, a checkpoint
    that is not ours, or one of another kind (``speechkd.kind``: "vocoder", "se"; acoustic models: none)."""
    trainer = trainer or TRAINERS.get(kind, "speechkd train")
    ckpt = load_weights_only(path)
    meta = ckpt.get("speechkd") if isinstance(ckpt, dict) else None
    if not isinstance(meta, dict) or meta.get("kind") != kind or not isinstance(ckpt.get("state_dict"), dict):
        what = {None: "acoustic-model", "se": "SE"}.get(kind, kind)
        raise SpeechkdError(f"not a speechkd {what} checkpoint", path=path,
                            hint=f"pass an exp dir written by `{trainer}`")
    return ckpt


def model_state(ckpt: dict, prefix: str = "model.") -> dict[str, torch.Tensor]:
    """The weights of one submodule (``prefix``) of a Lightning checkpoint's task."""
    return {k[len(prefix):]: v for k, v in ckpt["state_dict"].items() if k.startswith(prefix)}


def _step_of(path: str) -> int:
    return int(re.findall(r"step(\d+)", os.path.basename(path))[0])


def step_checkpoints(exp_dir: str) -> list[str]:
    """The exp's step<N>.ckpt files, oldest first."""
    return sorted(glob.glob(os.path.join(exp_dir, CKPT_DIR, "step*.ckpt")), key=_step_of)


def last_checkpoints(exp_dir: str, n: int, kind: str | None = None, trainer: str | None = None) -> list[str]:
    """The last ``n`` distinct steps of an exp dir, oldest first: step<N>.ckpt files older than
    last.ckpt, then last.ckpt (which may be newer than every step<N>.ckpt). Fewer when there are fewer."""
    trainer = trainer or TRAINERS.get(kind, "speechkd train")
    last = resolve_checkpoint(exp_dir, trainer)
    last_step = int(read_checkpoint(last, kind, trainer).get("global_step", 0))
    older = [p for p in step_checkpoints(exp_dir) if _step_of(p) < last_step]
    return (older[-(n - 1):] if n > 1 else []) + [last]


def average_states(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Element-wise mean of floating-point weights (in float64, cast back); other entries (counters,
    integer buffers) from the newest state. Checkpoint averaging as in ESPnet's recipes."""
    if len(states) == 1:
        return states[0]
    return {k: (sum(s[k].double() for s in states) / len(states)).to(v.dtype) if v.is_floating_point() else v
            for k, v in states[-1].items()}


def checkpoints_to_load(exp_or_ckpt: str, average: int, kind: str | None = None,
                        trainer: str | None = None) -> list[str]:
    """The checkpoint paths ``average`` asks for: the last N of an exp dir (warning when it has
    fewer), or the one checkpoint."""
    trainer = trainer or TRAINERS.get(kind, "speechkd train")
    if average < 1:
        raise SpeechkdError(f"--average must be >= 1, got {average}", field="--average")
    if average == 1:
        return [resolve_checkpoint(exp_or_ckpt, trainer)]
    if not os.path.isdir(exp_or_ckpt):
        raise SpeechkdError("averaging checkpoints needs an exp dir", path=exp_or_ckpt, field="--average")
    paths = last_checkpoints(exp_or_ckpt, average, kind, trainer)
    if len(paths) < average:
        logger.warning("%s: averaging the %d checkpoints there are (asked for %d; keep more with "
                       "trainer.keep_checkpoints)", exp_or_ckpt, len(paths), average)
    return paths


# ---- acoustic models --------------------------------------------------------------------------------
@dataclass
class LoadedModel:
    """A trained acoustic model with everything needed to use it consistently. ``meta`` is the
    checkpoint's raw ``"speechkd"`` entry (``meta["config"]``: the training config as a dict; the
    trainers type it with :func:`speechkd.train.config.loaded_train_config`)."""

    model: AcousticModel
    name: str
    model_conf: Any
    token_list: TokenList
    feature_config: FeatureConfig
    mel_mean: np.ndarray
    mel_std: np.ndarray
    step: int
    version: dict
    path: str
    meta: dict
    frontend: dict | None = None  # text frontend settings (frontend.yaml); None in older checkpoints
    speakers: Speakers = field(default_factory=Speakers)  # no table in single-speaker and older checkpoints

    @property
    def multi_speaker(self) -> bool:
        return self.speakers.conditioned

    def speaker_inputs(self, names: Sequence[str | None], utts: Sequence[str] | None = None,
                       device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
        """The model's speaker inputs (``spk`` rows, ``spk_emb`` speaker-mean embeddings) for one
        speaker name per utterance; {} for a single-speaker model (names are then ignored). An unknown
        or missing speaker is an error listing the known ones."""
        sp = self.speakers
        if not sp.conditioned:
            return {}
        out: dict[str, torch.Tensor] = {}
        check_speaker_names(names, sp.known, utts=utts, path=self.path)
        if sp.n_table:
            out["spk"] = torch.tensor([sp.ids.index(n) for n in names], dtype=torch.long, device=device)
        if sp.embed_dim:
            out["spk_emb"] = torch.tensor([sp.embeddings[n] for n in names], dtype=torch.float32, device=device)
        return out

    @property
    def token_list_path(self) -> str:
        """The token list the model was trained with (``data.token_list`` of its config)."""
        data = self.meta.get("config", {}).get("data", {})
        return str(data.get("token_list", "")) if isinstance(data, dict) else ""

    def normalize(self, mel: torch.Tensor) -> torch.Tensor:
        if self.feature_config.normalization != "global":
            return mel
        return (mel - torch.as_tensor(self.mel_mean).to(mel)) / torch.as_tensor(self.mel_std).to(mel)

    def denormalize(self, mel: torch.Tensor) -> torch.Tensor:
        if self.feature_config.normalization != "global":
            return mel
        return mel * torch.as_tensor(self.mel_std).to(mel) + torch.as_tensor(self.mel_mean).to(mel)


def _meta_field(meta: dict, name: str, path: str) -> Any:
    if name not in meta:
        raise SpeechkdError(f"checkpoint metadata has no {name!r}", path=path,
                            hint="the file was not written by speechkd's trainer")
    return meta[name]


def load_model(exp_or_ckpt: str, device: str | torch.device = "cpu", average: int = 1) -> LoadedModel:
    """Rebuild a trained acoustic model from its checkpoint (eval mode), with its tokens and
    FeatureConfig; ``average`` > 1 averages the weights of the exp dir's last N checkpoints (its
    config, tokens and statistics are those of the newest)."""
    paths = checkpoints_to_load(exp_or_ckpt, average)
    path = paths[-1]
    ckpt = read_checkpoint(path)
    meta = ckpt["speechkd"]
    config = _meta_field(meta, "config", path)
    if not isinstance(config, dict):
        raise SpeechkdError("checkpoint config is not a mapping", path=path)
    source = f"{path} (embedded config)"
    name = str(config.get("model", "transformer_tts"))
    cls = get_model_class(name)
    conf = config.get("model_conf") or {}
    if not isinstance(conf, dict):
        raise ConfigError("model_conf is not a mapping", path=source, field="model_conf")
    model_conf = from_dict(cls.Config, conf, source=source, prefix="model_conf.")
    tl = TokenList(_meta_field(meta, "tokens", path), path=f"{path} (embedded token list)")
    fc = FeatureConfig.from_dict(_meta_field(meta, "feature_config", path),
                                 source=f"{path} (embedded feature config)")
    speakers = Speakers.from_meta(meta.get("speakers"))
    model = cls(model_conf, n_vocab=len(tl), n_mels=fc.n_mels, n_speakers=speakers.n_table,
                spk_embed_dim=speakers.embed_dim)
    states = [model_state(read_checkpoint(p)) for p in paths[:-1]] + [model_state(ckpt)]
    model.load_state_dict(average_states(states))
    if len(paths) > 1:
        logger.info("loaded %s: average of %d checkpoints (%s)", exp_or_ckpt, len(paths),
                    ", ".join(os.path.basename(p) for p in paths))
    model.to(device).eval()
    return LoadedModel(model, name, model_conf, tl, fc, np.asarray(meta.get("mel_mean"), np.float32),
                       np.asarray(meta.get("mel_std"), np.float32), int(ckpt.get("global_step", 0)),
                       meta.get("version", {}), path, meta, meta.get("frontend"), speakers)


# ---- vocoders ----------------------------------------------------------------------------------------
def read_vocoder_checkpoint(exp_or_ckpt: str) -> tuple[str, dict]:
    """(path, checkpoint) of a trained vocoder's exp dir or ``.ckpt``."""
    path = resolve_checkpoint(exp_or_ckpt, TRAINERS["vocoder"])
    return path, read_checkpoint(path, "vocoder")


def load_trained_vocoder(exp_or_ckpt: str, feature_config: FeatureConfig | None, device: str = "cpu") -> Vocos:
    """The trained generator as a :class:`~speechkd.models.vocoders.vocos.Vocos` vocoder; refused when its
    FeatureConfig differs from ``feature_config`` in any mel field (None: no check)."""
    path, ckpt = read_vocoder_checkpoint(exp_or_ckpt)
    meta = ckpt["speechkd"]
    config = _meta_field(meta, "config", path)
    source = f"{path} (embedded config)"
    name = config.get("generator", "vocos") if isinstance(config, dict) else None
    if name not in GENERATORS:
        raise ConfigError(f"unknown generator {name!r}; known: {', '.join(GENERATORS)}", path=source,
                          field="generator")
    gen_cls, cfg_cls = GENERATORS[name]
    gen_conf = from_dict(cfg_cls, config.get("generator_conf") or {}, source=source, prefix="generator_conf.")
    fc = FeatureConfig.from_dict(_meta_field(meta, "feature_config", path),
                                 source=f"{path} (embedded feature config)")
    if feature_config is not None:
        check_compatible(fc, feature_config, f"vocoder {exp_or_ckpt}", "the acoustic features", only=MEL_FIELDS,
                         hint="use a vocoder trained on features of the same definition, or griffin_lim")
    gen = gen_cls(gen_conf, fc)
    gen.load_state_dict(model_state(ckpt, "generator."))
    logger.info("loaded vocoder %s (%s, step %d, %.1f training minutes)", path, name,
                int(ckpt.get("global_step", 0)), float(meta.get("train_minutes", 0.0)))
    return Vocos(gen, fc, device=device, path=path, step=int(ckpt.get("global_step", 0)))


def is_exp_or_checkpoint(name: str) -> bool:
    return os.path.isdir(name) or name.endswith(".ckpt") or os.sep in name


def resolve_device(device: str | torch.device) -> str:
    """``auto`` -> cuda when torch sees one, else cpu; a cuda device torch cannot see is refused."""
    device = str(device)
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise SpeechkdError(f"device {device!r} asked for, but torch sees no CUDA device", field="--device",
                            hint="use --device cpu or auto")
    return device


def load_vocoder(name_or_exp_dir: str, feature_config: FeatureConfig, device: str = "cpu",
                 options: dict | None = None) -> Vocoder:
    """The one way to get a vocoder for log-mels of ``feature_config``: ``voc(log_mel [B, T, n_mels],
    lengths=None) -> wav [B, N]`` (a torch tensor on ``device``; log_mel is the dump's raw log-mel,
    never normalised; ``lengths`` in frames zero the padded frames).

    ``name_or_exp_dir``: a registered vocoder that needs no training (``griffin_lim``, ``world``;
    built for ``feature_config`` with ``options`` as its config overrides), a pretrained one
    (``hifigan_universal``, ``hifigan_ljspeech``: refused like a trained one when its own
    FeatureConfig differs from ``feature_config``), or the exp dir (or
    ``.ckpt``) of a trained vocoder (``speechkd train-vocoder``), which is refused with a
    :class:`~speechkd.errors.FeatureMismatchError` naming every differing mel field when it was
    trained on other features than ``feature_config``. Every vocoder returned carries its
    ``feature_config``.
    """
    device = resolve_device(device)
    if name_or_exp_dir in VOCODERS:
        return build_vocoder(name_or_exp_dir, feature_config, options, device)
    if name_or_exp_dir in PRETRAINED:
        return load_pretrained(name_or_exp_dir, feature_config, device, options)
    if name_or_exp_dir in GENERATORS:
        raise SpeechkdError(f"'{name_or_exp_dir}' is a trainable vocoder: give the exp dir of a trained one",
                            field="--vocoder", hint="e.g. --vocoder exp/vocoder_vocos (recipe stage 9)")
    if not is_exp_or_checkpoint(name_or_exp_dir):
        raise SpeechkdError(f"unknown vocoder '{name_or_exp_dir}'", field="--vocoder",
                            hint=f"give a trained vocoder's exp dir or one of {', '.join([*VOCODERS, *PRETRAINED])}")
    if options:
        raise ConfigError("vocoder options apply to untrained vocoders only (e.g. griffin_lim n_iter=64)",
                          field="--vocoder")
    return load_trained_vocoder(name_or_exp_dir, feature_config, device)
