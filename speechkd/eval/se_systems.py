"""The evaluations of recipe stage 6: the noisy input and every system of an SE systems manifest
(:mod:`speechkd.enhance.systems`) on every test set, each of a spread system's single checkpoints
as ``<system>@ckpt<k>`` (the spread columns of :mod:`speechkd.eval.se_summary`).

Each evaluation writes ``<eval dir>/<test set>/<system>/results.json``; one whose results.json is
newer than the enhanced dir's enhance.json is up to date and not run again (a rerun, e.g. with a
larger spread, redoes only what is new).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from speechkd.enhance.systems import SeSystem

NOISY = "noisy"


@dataclass(frozen=True)
class EvalJob:
    """One ``speechkd eval se`` run."""

    test_set: str
    system: str  # the row's name: noisy, <system> or <system>@ckpt<k>
    ref_dir: str  # the clean references (<data root>/<test set>/ref)
    enh_dir: str  # the audio evaluated
    noisy_dir: str  # the noisy input, for the improvements
    out: str  # <eval dir>/<test set>/<system>
    title: str

    @property
    def results(self) -> str:
        return os.path.join(self.out, "results.json")


def eval_jobs(systems: list[SeSystem], test_sets: list[str], data_root: str, eval_dir: str) -> list[EvalJob]:
    """Per test set: the noisy input, every system, then each spread system's checkpoints 1..K
    (the order of the results files given to the summary)."""
    jobs = []
    for t in test_sets:
        data = os.path.join(data_root, t)
        ref = os.path.join(data, "ref")
        rows = [(NOISY, data, f"noisy input: {t}")]
        rows += [(s.name, s.enhanced_dir(t), f"{s.name}: {t}") for s in systems]
        rows += [(f"{s.name}@ckpt{k}", s.enhanced_dir(t, k), f"{s.name}, checkpoint {k} alone: {t}")
                 for s in systems for k in range(1, s.spread + 1)]
        jobs += [EvalJob(t, name, ref, enh, data, os.path.join(eval_dir, t, name), title) for name, enh, title in rows]
    return jobs


def up_to_date(job: EvalJob) -> bool:
    """Whether the job's results.json is newer than the enhance.json of the audio it evaluated."""
    enh = os.path.join(job.enh_dir, "enhance.json")
    return (os.path.isfile(job.results) and os.path.isfile(enh)
            and os.stat(job.results).st_mtime_ns > os.stat(enh).st_mtime_ns)
