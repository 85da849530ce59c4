"""`speechkd bench contention`: the table's arithmetic, the cells' environments, the synthetic batch
and the busy neighbours' cleanup (no timing assertions: the clock depends on the machine's load)."""

from __future__ import annotations

import math

import pytest

from fake_dump import TINY
from speechkd.bench.contention import Cell, ContentionTable, busy_processes, cell_env, synthetic_batch
from speechkd.cli import main
from speechkd.train.config import load_train_config


def test_table_rows_and_ratios():
    cells = [Cell("old", 0, 120, 60.0, 110.0, 2, "unset"), Cell("old", 1, 30, 60.0, 70.0, 2, "unset"),
             Cell("new", 0, 100, 50.0, 48.0, 2, "unset"), Cell("new", 1, 60, 60.0, 59.0, 1, "unset")]
    t = ContentionTable("t", cells)
    old, new = t.rows()
    assert old["quiet_steps_per_min"] == 120 and old["busy_steps_per_min"] == 30 and old["busy_over_quiet"] == 0.25
    assert new["quiet_steps_per_min"] == 120 and new["busy_over_quiet"] == 0.5
    assert (new["threads_quiet"], new["threads_busy"], new["busy_processes"]) == (2, 1, 1)
    md = t.markdown()
    assert "beside 1 busy steps/min" in md and "| 0.25 |" in md and "| 0.50 |" in md and "| 2, 1 |" in md
    d = t.to_dict()
    assert d["cells"][2]["steps_per_minute"] == 120 and len(d["rows"]) == 2
    assert math.isnan(ContentionTable("x", [Cell("old", 0, 0, 0.0, 0.0, 1, "unset")]).rows()[0]["busy_over_quiet"])


def test_cell_environments(monkeypatch):
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    old, new, passive = (cell_env(m) for m in ("old", "new", "passive"))
    assert "OMP_WAIT_POLICY" not in old and "OMP_NUM_THREADS" not in old and "OMP_WAIT_POLICY" not in new
    assert passive["OMP_WAIT_POLICY"] == "PASSIVE" and "OMP_NUM_THREADS" not in new


def test_synthetic_batch_has_the_configs_shape():
    cfg = load_train_config(TINY, ["data.batch_frames=100"])
    b = synthetic_batch(cfg, frames=30, frames_per_token=4, n_vocab=20, n_mels=80, needs=("durations", "pitch"))
    assert b["mels"].shape == (3, 30, 80) and b["tokens"].shape == (3, 7) and int(b["tokens"].max()) < 20
    assert (b["durations"].sum(1) == 30).all() and b["pitch"].shape == (3, 7) and "energy" not in b


def test_busy_processes_are_always_killed():
    with pytest.raises(RuntimeError):
        with busy_processes(1) as procs:
            assert procs[0].poll() is None
            raise RuntimeError("a failing cell")
    assert procs[0].poll() is not None


def test_bad_arguments_exit_2():
    assert main(["bench", "contention", "--config", str(TINY), "--modes", "fast"]) == 2
    assert main(["bench", "contention", "--config", str(TINY), "--seconds", "0"]) == 2
    assert main(["bench", "contention", "--config", str(TINY), "--busy", "0"]) == 2
