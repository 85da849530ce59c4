"""Train the tiny acoustic model under DDP for tests/test_ddp.py (a script: Lightning's DDP launcher
re-executes it once per extra rank). Usage: ``python ddp_worker.py EXP KEY=VALUE ...``.

Besides training it records, per rank, what the test checks and the exp dir cannot show:
``seen.rank<R>.txt`` (epoch and utterance ids of every training batch) and ``writes.rank<R>.txt``
(every checkpoint file this rank wrote)."""

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


def _rank() -> int:
    import torch.distributed as dist
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


class SeenUtts(Callback):
    def __init__(self, exp: str):
        self.exp = exp

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx: int) -> None:
        with open(os.path.join(self.exp, f"seen.rank{trainer.global_rank}.txt"), "a") as f:
            f.write(f"{trainer.current_epoch} {trainer.global_step} {' '.join(batch['utts'])}\n")


def main() -> None:
    exp, overrides = sys.argv[1], sys.argv[2:]
    save = exp_module.AtomicCheckpointIO.save_checkpoint

    def recorded_save(self, checkpoint, path, storage_options=None):
        with open(os.path.join(exp, f"writes.rank{_rank()}.txt"), "a") as f:
            f.write(f"{path}\n")
        save(self, checkpoint, path, storage_options)

    exp_module.AtomicCheckpointIO.save_checkpoint = recorded_save
    run_training(load_train_config(TINY, overrides), exp, progress_bar=False, callbacks=[SeenUtts(exp)])


if __name__ == "__main__":
    main()
