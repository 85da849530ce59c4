"""An ESPnet2 Transformer-TTS or Tacotron 2 as the AR teacher of speechkd's teacher dump.

``speechkd teacher-dump --espnet-config EXP/config.yaml --espnet-model EXP/X.pth`` builds the
model with ESPnet's own classes (``espnet2.tasks.tts.TTSTask.build_model`` from the config, the
state dict read with ``weights_only=True``) and runs it over a speechkd split, through the same
:func:`speechkd.distill.teacher_dump.dump_mode` as speechkd's own teacher: focus-rate head
selection, MAS, acoustic refinement, free-running mels, report and alignment check are
speechkd's functions, only the forward pass is ESPnet's. Mappings:

- **Tokens**: the split's tokens (strings) are encoded with :func:`token_list_from_espnet` of the
  config's ``token_list`` and fed to the model as ESPnet ids (looked up by string, ``<unk>`` ->
  ``<unk>``); a token outside ESPnet's inventory is an error, not a silent ``<unk>``.
- **Features**: the dump's mels must have been made with :func:`feature_config_from_espnet` of the
  config (``speechkd espnet feature-config`` writes it for ``speechkd features --config``); any
  difference in the mel fields is one error line. Teacher forcing feeds the dump's mels through
  the model's ``normalize`` layer, as ``ESPnetTTSModel.inference`` does with the mels it extracts
  itself; free-running mels are denormalised by its inverse. The ``global_mvn`` statistics are the
  checkpoint's (``normalize.mean``/``std``): the config's ``stats_file`` is not read.
- **Attention**: Transformer-TTS gives every decoder layer's encoder-decoder attention
  ``[L, H, T, S + 1]``, Tacotron 2 its one location-sensitive attention ``[T, S + 1]`` (one layer,
  one head). ESPnet appends ``<sos/eos>`` to every input; its attention row is added to the last
  token's (the ``<eos>`` frames join the last token, as :func:`durations_from_espnet` does with
  ESPnet's own durations), so durations and focus rates are over the S tokens of the split.
- **Decoding**: free-running is ESPnet's ``inference`` (stop threshold 0.5, ``maxlenratio`` =
  ``--max-frames-per-token``, default 10 as in ESPnet); ``stopped`` is its stop token firing. The
  always-on prenet dropout (ESPnet's Prenet, like speechkd's) is seeded per utterance.
- Only reduction factor 1 (as ESPnet's FastSpeech recipes) and single-speaker models.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import zlib

import numpy as np
import torch

from speechkd.checkpoints import load_weights_only
from speechkd.distill.espnet_io import (ESPNET_BLANK, ESPNET_EOS, ESPNET_UNK, feature_config_from_espnet,
                                        read_espnet_config, read_espnet_token_list, token_list_from_espnet)
from speechkd.distill.teacher_dump import (DumpOptions, Teacher, check_request, dump_mode, resolve_device,
                                           utterance_result)
from speechkd.errors import SpeechkdError
from speechkd.features.config import MEL_FIELDS, check_compatible
from speechkd.train.data import read_feature_config

logger = logging.getLogger(__name__)

AR_TEACHERS = ("transformer", "tacotron2")  # ESPnet2 tts choices with encoder-decoder attention
DEFAULT_MAXLENRATIO = 10.0  # ESPnet's tts_inference default
STOP_THRESHOLD = 0.5
# what build_model reads that an ESPnet-written config.yaml always holds; a hand-written one may not
_ARG_DEFAULTS = {"odim": None, "feats_extract": "fbank", "feats_extract_conf": {}, "normalize": None,
                 "normalize_conf": {}, "tts_conf": {}, "model_conf": {}}


def _espnet():
    try:
        import espnet
        from espnet2.tasks.tts import TTSTask
    except ImportError as e:
        raise SpeechkdError(f"ESPnet is not installed ({e.name or e})", field="--espnet-model",
                            hint="install the ESPnet extra: bash tools/install_espnet.sh") from None
    return espnet.__version__, TTSTask


def load_espnet_tts(config_path: str, model_path: str, device: torch.device):
    """(ESPnetTTSModel in eval mode on ``device``, config dict, ESPnet token list)."""
    cfg = read_espnet_config(config_path)
    if cfg.get("tts") not in AR_TEACHERS:
        raise SpeechkdError(f"tts is {cfg.get('tts')!r}: an AR teacher with encoder-decoder attention is needed",
                            path=config_path, field="tts", hint=" or ".join(AR_TEACHERS))
    tokens = read_espnet_token_list(config_path)
    version, TTSTask = _espnet()
    state = load_weights_only(model_path)
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise SpeechkdError("not an ESPnet model file (a state dict of tensors, e.g. valid.loss.ave.pth)",
                            path=model_path)
    args = {**_ARG_DEFAULTS, **cfg, "token_list": tokens}
    for k in ("feats_extract_conf", "normalize_conf", "tts_conf", "model_conf"):
        args[k] = dict(args[k] or {})
    with tempfile.TemporaryDirectory() as tmp:
        if args["normalize"] == "global_mvn":
            # GlobalMVN reads its stats file when built; the checkpoint holds the statistics it was
            # trained with (buffers mean/std), which load_state_dict sets anyway
            if "normalize.mean" not in state or "normalize.std" not in state:
                raise SpeechkdError("config uses global_mvn but the model has no normalize.mean/std",
                                    path=model_path, hint="pass the config this model was trained with")
            mean, std = state["normalize.mean"].double().numpy(), state["normalize.std"].double().numpy()
            stats = os.path.join(tmp, "feats_stats.npz")
            np.savez(stats, count=np.array(1.0), sum=mean, sum_square=std ** 2 + mean ** 2)
            args["normalize_conf"]["stats_file"] = stats
        try:
            model = TTSTask.build_model(argparse.Namespace(**args))
        except (TypeError, ValueError, KeyError, AssertionError, RuntimeError) as e:
            raise SpeechkdError(f"ESPnet cannot build the model of this config ({type(e).__name__}: "
                                f"{str(e).splitlines()[0] if str(e) else ''})", path=config_path) from None
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        first = next((ln.strip() for ln in str(e).splitlines()[1:] if ln.strip()), str(e).splitlines()[0])
        raise SpeechkdError(f"the model does not fit its config ({first[:200]})", path=model_path,
                            hint="pass the config.yaml of the exp dir the .pth comes from") from None
    tts = model.tts
    if getattr(tts, "spks", None) or getattr(tts, "langs", None) or getattr(tts, "spk_embed_dim", None):
        raise SpeechkdError("multi-speaker / multi-language ESPnet teachers are not supported", path=config_path,
                            field="tts_conf")
    return model.to(device).eval(), cfg, tokens, version


def fold_eos(att_w: torch.Tensor, num_tokens: int) -> list[np.ndarray]:
    """ESPnet's attention ``[L, H, T, S + 1]`` (Transformer) or ``[T, S + 1]`` (Tacotron 2) -> one
    ``[H, S, T]`` array per layer, the ``<sos/eos>`` row added to the last token's."""
    a = att_w.float().cpu().numpy()
    a = a[None, None] if a.ndim == 2 else a
    if a.ndim != 4 or a.shape[-1] != num_tokens + 1:
        raise SpeechkdError(f"ESPnet attention of shape {list(a.shape)} is not [L, H, T, {num_tokens + 1}]")
    a = np.swapaxes(a, -1, -2).copy()  # [L, H, S + 1, T]
    a[:, :, num_tokens - 1] += a[:, :, num_tokens]
    return list(a[:, :, :num_tokens])


def _seed(opts: DumpOptions, utt: str) -> int:
    return opts.seed * 1_000_003 + zlib.crc32(utt.encode("utf-8"))


def espnet_teacher(config_path: str, model_path: str, device: torch.device) -> Teacher:
    """A :class:`~speechkd.distill.teacher_dump.Teacher` running an ESPnet2 TTS model."""
    fc = feature_config_from_espnet(config_path)  # refuses r != 1 and non-fbank features first
    model, cfg, esp_tokens, version = load_espnet_tts(config_path, model_path, device)
    tl = token_list_from_espnet(esp_tokens)
    esp_id = {t: i for i, t in enumerate(esp_tokens)}
    special = {"<pad>": ESPNET_BLANK, "<unk>": ESPNET_UNK, "<eos>": ESPNET_EOS}
    lut = torch.tensor([esp_id[special.get(t, t)] for t in tl.tokens], dtype=torch.long)
    tts, norm = model.tts, model.normalize

    def run(batch: dict, mode: str, opts: DumpOptions, generator: torch.Generator, utt2spk: dict) -> dict:
        ratio = opts.max_frames_per_token or DEFAULT_MAXLENRATIO
        res: dict = {}
        for b, utt in enumerate(batch["utts"]):
            s, t = int(batch["token_lens"][b]), int(batch["mel_lens"][b])
            text = lut[batch["tokens"][b, :s]].to(device)
            feats = batch["mels"][b, :t].to(device)
            devs = [device.index or 0] if device.type == "cuda" else []
            with torch.no_grad(), torch.random.fork_rng(devices=devs):
                torch.manual_seed(_seed(opts, utt))
                if norm is not None:
                    feats = norm(feats[None], torch.tensor([t], device=device))[0][0]
                if mode == "teacher_forced":
                    out = tts.inference(text, feats=feats, use_teacher_forcing=True)
                    n = t
                else:
                    out = tts.inference(text, feats=feats, threshold=STOP_THRESHOLD, maxlenratio=ratio)
                    n = int(out["feat_gen"].shape[0])
            att = fold_eos(out["att_w"], s)
            if att[0].shape[-1] != n:
                res[utt] = f"attention over {att[0].shape[-1]} frames for {n}"
                continue
            try:
                r = utterance_result(att, 1, n, opts.method, opts.attention, opts.shift_frames)
            except ValueError as e:
                res[utt] = str(e)
                continue
            if mode == "free_running":
                mel = out["feat_gen"][None].clone()
                if norm is not None:
                    mel = norm.inverse(mel, torch.tensor([n], device=device))[0]
                stopped = bool((out["prob"].reshape(-1)[-1:] >= STOP_THRESHOLD).any())
                r.update(mel=mel[0].float().cpu().numpy(), stopped=np.bool_(stopped))
            res[utt] = r
        return res

    info = {"checkpoint": os.path.abspath(model_path), "step": None, "model": f"espnet2.{cfg['tts']}",
            "reduction_factor": 1, "version": None, "espnet_config": os.path.abspath(config_path),
            "espnet_version": version, "eos": "attention to <sos/eos> added to the last token"}
    return Teacher(tl, fc, 1, info, run, on_unknown="error",
                   retrain_hint="train the ESPnet teacher longer (or pass a later checkpoint): its attention "
                                "is not yet diagonal")


def espnet_teacher_dump(config_path: str, model_path: str, data: str, split: str, out: str, kd_mode: str,
                        opts: DumpOptions, device: str = "auto", overwrite: bool = False) -> dict[str, dict]:
    """:func:`speechkd.distill.teacher_dump.teacher_dump` with an ESPnet2 teacher."""
    modes = check_request(kd_mode, opts)
    if opts.average != 1:
        raise SpeechkdError("--average applies to speechkd exp dirs; ESPnet averages its own checkpoints "
                            "(e.g. valid.loss.ave.pth)", field="--average")
    check_compatible(feature_config_from_espnet(config_path), read_feature_config(data, split),
                     f"ESPnet config {config_path}",
                     f"dump {os.path.join(data, 'feats', split)}", only=MEL_FIELDS,
                     hint=f"dump the features with the ESPnet config's settings: speechkd espnet feature-config "
                          f"--espnet-config {config_path} --out FEATS.yaml, then speechkd features --config FEATS.yaml")
    dev = resolve_device(device)
    teacher = espnet_teacher(config_path, model_path, dev)
    logger.info("ESPnet teacher %s (%s) on %s/%s -> %s (%s)", model_path, teacher.info["model"], data, split, out,
                ", ".join(modes))
    return {m: dump_mode(teacher, data, split, os.path.join(out, m), m, opts, dev, overwrite) for m in modes}


__all__ = ["AR_TEACHERS", "load_espnet_tts", "fold_eos", "espnet_teacher", "espnet_teacher_dump"]
