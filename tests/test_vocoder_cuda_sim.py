"""The CUDA harmonic-synthesis kernel gives the CPU twin's samples, checked in numba's CUDA simulator.

NUMBA_ENABLE_CUDASIM must be set before numba is imported, so the check runs in a child
interpreter. Shapes stay tiny: the simulator runs every GPU thread as a Python thread.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

CHECK = r"""
import json
import numpy as np
from numba import config
assert config.ENABLE_CUDASIM
from speechkd.models.vocoders import source_filter as sfm
from speechkd.models.vocoders.source_filter_cuda import cuda_available, harmonics_cuda
from speechkd.models.vocoders.world import WorldParams

rng = np.random.default_rng(0)
results = []
for case, (lengths, f0_range, voiced) in enumerate([((4, 3), (900, 2500), 0.7), ((5,), (1500, 3000), 1.0),
                                                    ((3, 2), (900, 2000), 0.0)]):
    params = []
    for T in lengths:
        f0 = np.where(rng.random(T) < voiced, rng.uniform(*f0_range, T), 0.0)
        params.append(WorldParams(f0, rng.uniform(1e-5, 1e-2, (T, 65)), rng.uniform(0, 1, (T, 65)), 8000, 5.0))
    a = sfm.prepare(params)
    cpu = sfm.harmonics(a, "cpu")
    gpu = harmonics_cuda(a)
    via = sfm.harmonics(a, "cuda")
    results.append({"case": case, "shape": list(cpu.shape), "max_abs_diff": float(np.abs(cpu - gpu).max()),
                    "scale": float(np.abs(cpu).max()), "dispatch": bool(np.array_equal(gpu, via)),
                    "padding_zero": bool(all(np.all(gpu[b, n:] == 0) for b, n in enumerate(a["n_samples"])))})
print(json.dumps({"available": cuda_available(), "results": results}))
"""


def test_harmonic_kernel_matches_cpu_twin_under_simulator():
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    r = subprocess.run([sys.executable, "-c", CHECK], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["available"]
    for row in out["results"]:
        # same float32 operations in the same order: equal up to the simulator's cos
        assert row["max_abs_diff"] <= 1e-6 * max(1.0, row["scale"]), row
        assert row["dispatch"] and row["padding_zero"], row
    assert out["results"][0]["scale"] > 0 and out["results"][2]["scale"] == 0  # voiced vs all unvoiced
