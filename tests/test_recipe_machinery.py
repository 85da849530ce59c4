"""The shell machinery every recipe stands on: run.pl, parse_options.sh, run_stage."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
UTILS = ROOT / "recipes" / "utils"


def sh(script: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", script], cwd=cwd, capture_output=True, text=True, timeout=60)


def test_run_pl_substitutes_job_and_logs(tmp_path):
    r = sh(f'{UTILS}/run.pl JOB=1:3 log/x.JOB.log echo "job JOB of" 3', tmp_path)
    assert r.returncode == 0, r.stderr
    for i in (1, 2, 3):
        text = (tmp_path / f"log/x.{i}.log").read_text()
        assert f"job {i} of 3" in text and "Ended (code 0)" in text


def test_run_pl_reports_failed_jobs(tmp_path):
    r = sh(f'{UTILS}/run.pl JOB=1:3 log/y.JOB.log "test JOB -ne 2"', tmp_path)
    assert r.returncode != 0
    assert "job 2 failed" in r.stderr and "log/y.2.log" in r.stderr
    assert "job 1 failed" not in r.stderr and "1 / 3 jobs failed" in r.stderr


def test_run_pl_max_jobs(tmp_path):
    r = sh(f'{UTILS}/run.pl --max-jobs-run 1 JOB=1:4 log/z.JOB.log "echo JOB >> order.txt"', tmp_path)
    assert r.returncode == 0
    assert sorted((tmp_path / "order.txt").read_text().split()) == ["1", "2", "3", "4"]


def test_parse_options(tmp_path):
    script = f'nj=1; stop_stage=3; . {UTILS}/parse_options.sh; echo "$nj $stop_stage $*"'
    r = subprocess.run(["bash", "-c", script, "x", "--nj", "4", "--stop-stage=7", "rest"],
                       capture_output=True, text=True, cwd=tmp_path)
    assert r.stdout.strip() == "4 7 rest"
    r = subprocess.run(["bash", "-c", script, "x", "--njj", "4"], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode != 0 and "unknown option --njj" in r.stderr


# A stage script: options, the shared machinery, markers and logs under exp/.
PRELUDE = """#!/usr/bin/env bash
set -euo pipefail
stage=0; stop_stage=100; force=false
. {utils}/parse_options.sh
. {recipes}/lib.sh
markers=exp/.done; logdir=exp/log
"""

STAGES = PRELUDE + """\
one() {{ echo one >> ran.txt; }}
two() {{ echo two >> ran.txt; echo "some output"; [ -f ok ] || {{ echo "boom: file ok missing" >&2; return 3; }}; }}
run_stage 0 one one
run_stage 1 two two
"""


def test_run_stage_markers_failure_and_rerun(tmp_path):
    s = tmp_path / "run.sh"
    s.write_text(STAGES.format(utils=UTILS, recipes=ROOT / "recipes"))
    r = subprocess.run(["bash", str(s)], cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 3
    assert "Stage 1 (two) FAILED" in r.stderr and "boom: file ok missing" in r.stderr
    assert "--stage 1" in r.stderr  # says how to rerun
    assert (tmp_path / "exp/.done/0.one.done").exists()
    assert not (tmp_path / "exp/.done/1.two.done").exists()
    assert "boom" in (tmp_path / "exp/log/stage1.two.log").read_text()
    (tmp_path / "ok").touch()
    r = subprocess.run(["bash", str(s)], cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "skipping" in r.stderr
    # stage 0 ran once (skipped on rerun), stage 1 twice (failed, then passed)
    assert (tmp_path / "ran.txt").read_text().split() == ["one", "two", "two"]
    r = subprocess.run(["bash", str(s), "--stage", "0", "--stop_stage", "0", "--force", "true"],
                       cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0 and (tmp_path / "ran.txt").read_text().split().count("one") == 2


PARALLEL = PRELUDE + """# each waits for the other's file: they can only both finish if they run at the same time
a() {{ touch a.started; for _ in $(seq 100); do [ -f b.started ] && break; sleep 0.05; done; [ -f b.started ]; echo "a out"; }}
b() {{ touch b.started; for _ in $(seq 100); do [ -f a.started ] && break; sleep 0.05; done; echo "b out";
       [ -f ok ] || {{ echo "b: no ok" >&2; return 4; }}; }}
run_stages_parallel "0 a a" "1 b b"
echo after > after.txt
"""


def test_run_stages_parallel_side_by_side_failure_and_rerun(tmp_path):
    s = tmp_path / "run.sh"
    s.write_text(PARALLEL.format(utils=UTILS, recipes=ROOT / "recipes"))
    r = subprocess.run(["bash", str(s)], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    # b failed: the script stops there with b's exit code and log tail; a finished, side by side
    assert r.returncode == 4 and not (tmp_path / "after.txt").exists()
    assert "Stage 1 (b) FAILED" in r.stderr and "b: no ok" in r.stderr
    assert (tmp_path / "exp/.done/0.a.done").exists() and not (tmp_path / "exp/.done/1.b.done").exists()
    # stage output goes to the logs only, not to the console, where it would interleave
    assert "a out" in (tmp_path / "exp/log/stage0.a.log").read_text() and "a out" not in r.stdout + r.stderr
    (tmp_path / "ok").touch()
    (tmp_path / "a.started").unlink()
    r = subprocess.run(["bash", str(s)], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "Stage 0 (a): done" in r.stderr and (tmp_path / "after.txt").exists()


FAKE_SBATCH = """#!/usr/bin/env bash
# Stand-in for Slurm's sbatch --wait --array A-B[%N] script: runs each task in turn.
array=""; script=""
while [ $# -gt 0 ]; do
  case "$1" in
    --array) array=$2; shift 2 ;;
    --wait) shift ;;
    --*) shift 2 ;;
    *) script=$1; shift ;;
  esac
done
array=${array%%%*}; rc=0
for ((i = ${array%-*}; i <= ${array#*-}; i++)); do SLURM_ARRAY_TASK_ID=$i bash "$script" || rc=1; done
exit $rc
"""


def test_slurm_pl_with_a_stand_in_sbatch(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text(FAKE_SBATCH)
    (bin_dir / "sbatch").chmod(0o755)
    env = f'PATH={bin_dir}:$PATH'
    r = sh(f'{env} {UTILS}/slurm.pl --mem 2G JOB=1:3 log/s.JOB.log echo task JOB', tmp_path)
    assert r.returncode == 0, r.stderr
    for i in (1, 2, 3):
        text = (tmp_path / f"log/s.{i}.log").read_text()
        assert f"task {i}" in text and "Ended (code 0)" in text
    r = sh(f'{env} {UTILS}/slurm.pl JOB=1:2 log/f.JOB.log "test JOB -ne 2"', tmp_path)
    assert r.returncode != 0 and "task 2 failed" in r.stderr and "task 1 failed" not in r.stderr
