"""What the session fixture ``exported`` (tests/conftest.py) makes for the export and serve tests: tiny
random students and a vocoder written in the trainers' checkpoint formats, exported once."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch

from speechkd.cli import main
from speechkd.config import to_dict
from speechkd.data.speakers import Speakers
from speechkd.export.onnx import export_onnx
from speechkd.train.vocoder import build_generator, vocoder_config_from_dict
from test_synth import FEATS, make_exp


def make_vocoder_exp(root: Path) -> Path:
    """``root/exp/vocoder_vocos`` as ``speechkd train-vocoder`` writes it (VocoderTask's metadata;
    random generator weights)."""
    cfg = vocoder_config_from_dict({"generator": "vocos",
                                    "generator_conf": {"dim": 16, "intermediate_dim": 32, "num_layers": 2}})
    torch.manual_seed(1)
    gen = build_generator(cfg, FEATS, np.full(FEATS.n_mels, -4.0, np.float32), np.ones(FEATS.n_mels, np.float32))
    exp = root / "exp/vocoder_vocos"
    (exp / "checkpoints").mkdir(parents=True)
    torch.save({"state_dict": {"generator." + k: v for k, v in gen.state_dict().items()},
                "speechkd": {"kind": "vocoder", "config": to_dict(cfg), "feature_config": to_dict(FEATS)},
                "global_step": 0}, exp / "checkpoints/last.ckpt")
    return exp


def export_all(root: Path) -> dict[str, Path]:
    """FastSpeech 2 + Vocos through the API, FastSpeech (globally normalised mels) + Griffin-Lim through
    the CLI (fp32)."""
    exps = {"fastspeech2": make_exp(root, "fastspeech2"),
            # global mel normalisation with non-trivial statistics: the runtime's denormalisation is checked too
            "fastspeech": make_exp(root, "fastspeech", dataclasses.replace(FEATS, normalization="global"))}
    ckpt = exps["fastspeech"] / "checkpoints/last.ckpt"
    state = torch.load(ckpt, weights_only=True)
    state["speechkd"]["mel_std"] = np.linspace(0.5, 2.0, FEATS.n_mels).tolist()
    state["speechkd"]["mel_mean"] = np.linspace(-6.0, -2.0, FEATS.n_mels).tolist()
    torch.save(state, ckpt)
    voc = make_vocoder_exp(root)
    out = {"root": root, "voc": voc, **exps}
    out["fs2_vocos"] = root / "out/fs2_vocos"
    export_onnx(str(exps["fastspeech2"]), str(out["fs2_vocos"]), vocoder=str(voc))
    # a multi-speaker FastSpeech 2: a table of three voices, a 4-dim external embedding, and per-speaker
    # pitch/energy statistics (speaker_variance_norm), each different, so every speaker input matters
    ids = ["awb", "bdl", "clb"]
    spk = Speakers(ids=ids, embed_dim=4,
                   embeddings={s: np.random.default_rng(i).normal(size=4).tolist() for i, s in enumerate(ids)},
                   variance_stats={s: [4.6 + 0.3 * i, 0.2 + 0.1 * i, 4.0, 5.5, 2.0 + i, 1.0 + 0.5 * i, 0.0, 9.0]
                                   for i, s in enumerate(ids)})
    exps["fs2_multi"] = make_exp(root, "fastspeech2", speakers=spk, name="fs2_multi")
    out["fastspeech2_multi"] = exps["fs2_multi"]
    out["fs2_multi"] = root / "out/fs2_multi"
    export_onnx(str(exps["fs2_multi"]), str(out["fs2_multi"]), vocoder=str(voc))
    out["fs_gl"] = root / "out/fs_gl"
    assert main(["export", "--model", str(exps["fastspeech"]), "--format", "onnx", "--out", str(out["fs_gl"])]) == 0
    return out


def make_diffusion_exp(root: Path, steps: int = 2) -> Path:
    """``root/exp/diffusion_<steps>``: a k-step diffusion student (FastSpeech 2 condition + denoiser) as
    ``speechkd train`` / ``speechkd distill progressive`` write it; random weights, the denoiser's
    zero-initialised output layer made random too so that the sampler's every step shows in the mel."""
    import test_synth
    from speechkd.features.stats import Stats
    from speechkd.train.config import train_config_from_dict
    from speechkd.train.module import TTSTask

    make_exp(root, "fastspeech")  # writes the token list and frontend the student shares
    tl_path = root / "data/token_list/char/tokens.txt"
    from speechkd.text.tokens import TokenList

    tl = TokenList.load(tl_path)
    cfg = train_config_from_dict({"model": "diffusion", "model_conf": {
        "steps": steps, "denoiser": {"residual_layers": 2, "residual_channels": 8, "dilation_cycle": 2},
        "condition": test_synth.TINY_CONFS["fastspeech2"]}, "data": {"token_list": str(tl_path)}})
    n = FEATS.n_mels
    stats = Stats(np.full(n, -4.0, np.float32), np.ones(n, np.float32), 5.0, 0.3, 4.3, 6.0, 1.0, 0.5, 0.0, 3.0,
                  10, 1000, 500)
    torch.manual_seed(0)
    task = TTSTask(cfg, tl, FEATS, stats)
    torch.nn.init.normal_(task.model.denoiser.out_proj.weight, std=0.3)
    exp = root / "exp" / f"diffusion_{steps}"
    (exp / "checkpoints").mkdir(parents=True)
    torch.save({"state_dict": task.state_dict(), "speechkd": task.meta, "global_step": 0},
               exp / "checkpoints" / "last.ckpt")
    return exp
