"""Train the tiny acoustic model (or, with ``--vocoder``, the tiny vocoder) under DDP for
tests/test_ddp.py (a script: Lightning's DDP launcher re-executes it once per extra rank).
Usage: ``python ddp_worker.py [--vocoder] EXP KEY=VALUE ...``.

Besides training it records, per rank, what the test checks and the exp dir cannot show:
``seen.rank<R>.txt`` (epoch and utterance ids of every training batch; the vocoder: step and
utterance indices), ``params.rank<R>.txt`` (a checksum of the final weights: synchronised
gradients keep the ranks' weights equal) and ``writes.rank<R>.txt`` (every checkpoint file this
rank wrote)."""

from __future__ import annotations

import os
import sys

import lightning as L
from lightning.pytorch.callbacks import Callback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fake_dump import TINY  # noqa: E402
from speechkd.train import exp as exp_module  # noqa: E402
from speechkd.train.config import load_train_config  # noqa: E402
from speechkd.train.trainer import run_training  # noqa: E402
from speechkd.train.vocoder import load_vocoder_config, run_vocoder_training  # noqa: E402

TINY_VOCODER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "recipes", "conf",
                            "vocoder_vocos_tiny.yaml")


def _rank() -> int:
    import torch.distributed as dist
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


class SeenUtts(Callback):
    def __init__(self, exp: str):
        self.exp = exp

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx: int) -> None:
        utts = batch["utts"] if "utts" in batch else [str(int(i)) for i in batch["index"]]
        with open(os.path.join(self.exp, f"seen.rank{trainer.global_rank}.txt"), "a") as f:
            f.write(f"{trainer.current_epoch} {trainer.global_step} {' '.join(utts)}\n")

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        total = sum(float(p.detach().double().abs().sum()) for p in pl_module.parameters())
        with open(os.path.join(self.exp, f"params.rank{trainer.global_rank}.txt"), "w") as f:
            f.write(f"{total!r}\n")


def main() -> None:
    vocoder = sys.argv[1] == "--vocoder"
    exp, overrides = sys.argv[1 + vocoder], sys.argv[2 + vocoder:]
    save = exp_module.AtomicCheckpointIO.save_checkpoint

    def recorded_save(self, checkpoint, path, storage_options=None):
        with open(os.path.join(exp, f"writes.rank{_rank()}.txt"), "a") as f:
            f.write(f"{path}\n")
        save(self, checkpoint, path, storage_options)

    exp_module.AtomicCheckpointIO.save_checkpoint = recorded_save
    if vocoder:
        run_vocoder_training(load_vocoder_config(TINY_VOCODER, overrides), exp, progress_bar=False,
                             callbacks=[SeenUtts(exp)])
    else:
        run_training(load_train_config(TINY, overrides), exp, progress_bar=False, callbacks=[SeenUtts(exp)])


if __name__ == "__main__":
    main()
