"""A training run's own check (speechkd.train.checks) on hand-written metrics.csv files."""

from __future__ import annotations

from pathlib import Path

import pytest

from speechkd.errors import SpeechkdError


def _metrics(path: Path, losses: list[float | None]) -> str:
    rows = ["step,train/loss,val/loss"] + [f"{i},{'' if v is None else v},{'' if i % 3 else 1.0}"
                                           for i, v in enumerate(losses)]
    path.write_text("\n".join(rows) + "\n")
    return str(path)


def test_check_loss_fell(tmp_path):
    from speechkd.train.checks import check_loss_fell

    falling = _metrics(tmp_path / "a.csv", [4.0, 3.0, None, 2.5, 2.0, 1.5, 1.2, 1.0, 0.9, 0.8, 0.8])
    fig = check_loss_fell(falling, window=3)  # first 3 values 4, 3, 2.5; last 3: 0.9, 0.8, 0.8
    assert fig["n"] == 10 and abs(fig["first"] - 9.5 / 3) < 1e-9 and abs(fig["last"] - 2.5 / 3) < 1e-9
    assert check_loss_fell(falling, min_drop=0.7, window=3)["drop"] > 0.7
    with pytest.raises(SpeechkdError, match=r"did not fall.*at least 80.0% wanted"):
        check_loss_fell(falling, min_drop=0.8, window=3)
    flat = _metrics(tmp_path / "b.csv", [2.0, 2.1, 1.9, 2.0, 2.05, 2.0])
    with pytest.raises(SpeechkdError, match="train longer"):
        check_loss_fell(flat, window=3)
    nan = _metrics(tmp_path / "c.csv", [2.0, 1.0, float("nan"), float("nan")])
    with pytest.raises(SpeechkdError, match="diverged"):
        check_loss_fell(nan)
    with pytest.raises(SpeechkdError, match="logged 1 time"):
        check_loss_fell(_metrics(tmp_path / "d.csv", [2.0, None]))
    with pytest.raises(SpeechkdError, match="does not exist"):
        check_loss_fell(str(tmp_path / "none.csv"))
    assert check_loss_fell(_metrics(tmp_path / "e.csv", [3.0, 1.0]))["window"] == 1  # short runs: halves
