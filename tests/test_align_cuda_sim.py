"""The CUDA MAS kernels give the CPU kernel's paths, checked in numba's CUDA simulator.

NUMBA_ENABLE_CUDASIM must be set before numba is imported, so the check runs in
a child interpreter. Shapes stay tiny: the simulator runs every GPU thread as a
Python thread (~1000x slower than the hardware).
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
from speechkd.align.mas import maximum_path
from speechkd.align.mas_cuda import cuda_available, maximum_path_cuda

rng = np.random.default_rng(0)
results = []
cases = []
for seed, kind in enumerate(["normal", "ties", "zeros", "inf", "normal"]):
    s_len = rng.integers(1, 7, 3)
    t_len = np.array([rng.integers(s, 16) for s in s_len])
    v = rng.standard_normal((3, 6, 15))
    if kind == "ties":
        v = rng.integers(-2, 1, v.shape).astype(float)
    elif kind == "zeros":
        v = np.zeros(v.shape)
    elif kind == "inf":
        v[rng.random(v.shape) < 0.2] = -np.inf
    cases.append((kind, v.astype(np.float32), s_len, t_len))
for kind, v, s_len, t_len in cases:
    ref = maximum_path(v, s_len, t_len, backend="python")
    same = {"numba": bool(np.array_equal(maximum_path(v, s_len, t_len, backend="numba"), ref))}
    for variant, kw in [("thread", {}), ("block", {}), ("block_tile3_threads2", {"tile": 3, "threads": 2})]:
        got = maximum_path_cuda(v, s_len, t_len, variant=variant.split("_")[0], **kw)
        same[variant] = bool(np.array_equal(got, ref))
    results.append({"kind": kind, **same})
auto = maximum_path(cases[0][1], cases[0][2], cases[0][3], backend="cuda")
from numba import cuda
one = cases[0][1][0]
dev_out = maximum_path(cuda.to_device(one))  # a device array picks the cuda backend and stays on the device
print(json.dumps({"available": cuda_available(), "results": results,
                  "backend_cuda": bool(np.array_equal(auto, maximum_path(cases[0][1], cases[0][2], cases[0][3]))),
                  "device_in_out": hasattr(dev_out, "copy_to_host")
                                   and bool(np.array_equal(dev_out.copy_to_host(), maximum_path(one)))}))
"""


def test_cuda_kernels_match_cpu_under_simulator():
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    r = subprocess.run([sys.executable, "-c", CHECK], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["available"] and out["backend_cuda"] and out["device_in_out"]
    for row in out["results"]:
        assert all(v for k, v in row.items() if k != "kind"), row
