"""A tiny fake TTS dump (tokens + random mels) in the layout of stages 1-2, for training tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from speechkd.features.config import FeatureConfig
from speechkd.features.stats import compute_stats
from speechkd.text.tokens import SPECIALS, TokenList

PHONES = ["a", "b", "k", "d", "e", "f", "<space>"]
TINY = Path(__file__).resolve().parents[1] / "egs/mini_en/tts1/conf/teacher_ar_tiny.yaml"


def make_fake_dump(root: Path, n_train: int = 8, n_dev: int = 3, n_mels: int = 80, seed: int = 0,
                   n_speakers: int = 0) -> dict[str, Path]:
    """``root/dump/{tokens,feats}/{train,dev}`` and ``root/tokens.txt``; returns their paths.

    Utterances have 4-9 tokens and 3-6 frames per token (T >= S, so durations exist). With
    ``n_speakers`` the tokens dirs hold an ``utt2spk`` (speakers ``spk0``.. in turn, ids prefixed by
    their speaker) and speaker k's frames are voiced at log-F0 4.5 + 0.3 k."""
    rng = np.random.default_rng(seed)
    tl = TokenList(list(SPECIALS) + PHONES)
    tl.save(root / "tokens.txt")
    fc = FeatureConfig(n_mels=n_mels)
    for split, n in (("train", n_train), ("dev", n_dev)):
        tok_dir, feat_dir = root / "dump/tokens" / split, root / "dump/feats" / split
        (feat_dir / "data").mkdir(parents=True)
        tok_dir.mkdir(parents=True)
        tok_lines, scp_lines, paths = [], [], []
        for i in range(n):
            spk = f"spk{i % n_speakers}" if n_speakers else ""
            utt = f"{spk}_utt_{split}_{i:02d}" if spk else f"utt_{split}_{i:02d}"
            toks = list(rng.choice(PHONES, size=int(rng.integers(4, 10))))
            frames = int(len(toks) * rng.integers(3, 7))
            mel = (rng.standard_normal((frames, n_mels)) - 4.0).astype(np.float32)
            p = feat_dir / "data" / f"{utt}.npz"
            k = i % n_speakers if n_speakers else 0
            lf0 = (4.5 + 0.3 * k + 0.1 * rng.standard_normal(frames)).astype(np.float32) if n_speakers else None
            np.savez(p, mel=mel, lf0=lf0 if lf0 is not None else np.zeros(frames, np.float32),
                     vuv=np.ones(frames, np.float32) if n_speakers else np.zeros(frames, np.float32),
                     energy=np.ones(frames, np.float32), num_samples=np.asarray(frames * 256, np.int64))
            paths.append(str(p))
            tok_lines.append(f"{utt} {' '.join(toks)}\n")
            scp_lines.append(f"{utt} data/{utt}.npz {frames}\n")
        (tok_dir / "tokens").write_text("".join(tok_lines))
        if n_speakers:
            (tok_dir / "utt2spk").write_text("".join(f"{ln.split()[0]} {ln.split('_')[0]}\n" for ln in tok_lines))
        (feat_dir / "feats.scp").write_text("".join(scp_lines))
        fc.save(feat_dir / "feature_config.yaml")
        compute_stats(paths).save(feat_dir / "stats.npz")
    return {"dump": root / "dump", "token_list": root / "tokens.txt"}


def tiny_overrides(paths: dict[str, Path], **extra) -> list[str]:
    """Overrides that point the tiny preset at a fake dump."""
    out = [f"data.dump_dir={paths['dump']}", f"data.token_list={paths['token_list']}",
           "trainer.accelerator=cpu", "trainer.devices=1"]
    return out + [f"{k}={v}" for k, v in extra.items()]
