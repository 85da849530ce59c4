"""Damaged checkpoints for the resume tests of every trainer: a truncated file, and a pickle that
would run code (create a directory) if it were loaded with ``weights_only=False``."""

from __future__ import annotations

import os
from pathlib import Path

import torch


class _Payload:
    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def write_evil_checkpoint(path: Path, marker: Path) -> None:
    """A checkpoint-shaped pickle whose loading (unsafely) creates the directory ``marker``."""
    torch.save({"state_dict": {}, "speechkd": _Payload(str(marker))}, path)


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def assert_fell_back(exp: Path, marker: Path | None = None) -> None:
    """The rerun said it resumed from a step checkpoint, and no payload ran."""
    log = (exp / "train.log").read_text()
    assert "last.ckpt is unusable" in log and "resuming from the newest intact checkpoint" in log, log[-2000:]
    if marker is not None:
        assert not marker.exists()
