"""speechkd.audio.resample is librosa's soxr_hq resampling, sample for sample, without librosa."""

import numpy as np
import pytest

from speechkd.audio import resample


@pytest.mark.parametrize("orig,target", [(22050, 16000), (16000, 48000), (48000, 16000), (24000, 16000)])
@pytest.mark.parametrize("n", [1, 7, 1000, 33333])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_resample_equals_librosa_soxr_hq(orig, target, n, dtype):
    librosa = pytest.importorskip("librosa")
    x = np.random.default_rng(n).standard_normal(n).astype(dtype)
    want = librosa.resample(x, orig_sr=orig, target_sr=target, res_type="soxr_hq")
    got = resample(x, orig, target)
    assert got.dtype == want.dtype and got.shape == want.shape and np.array_equal(got, want)


def test_same_rate_is_the_input():
    x = np.arange(5, dtype=np.float32)
    assert resample(x, 16000, 16000) is x
