"""SE data stage: exact SNRs, determinism, disjoint noise sets, and the clean speech of the
training set never read by noisy-target or remix training."""

from __future__ import annotations

import os
import shutil
import sys

import numpy as np
import pytest
import soundfile as sf

from se_fixtures import make_corpora
from speechkd.data.kaldi import read_datadir, read_table
from speechkd.data.validate import validate_datadir
from speechkd.enhance.config import load_se_config
from speechkd.enhance.mixing import mix_int16, snr_db
from speechkd.enhance.prepare import MixPlan, prepare_se_data


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def se_data(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("se")
    speech, noise = make_corpora(tmp)
    prepare_se_data(str(speech), str(noise), str(tmp / "se"), MixPlan(seed=3))
    return tmp


def _read_int(path: str) -> np.ndarray:
    return sf.read(path, dtype="int16")[0].astype(np.float64)


def test_mixture_snr_exact_and_consistent(se_data):
    se = se_data / "se"
    for noisy, clean in (("train_noisy", "train_clean_eval_only"), ("test_in_domain", "test_in_domain"),
                         ("test_mismatched", "test_mismatched"), ("dev_noisy", "dev_clean_eval_only")):
        snrs = read_table(se / noisy / "utt2snr")
        cscp, nscp = read_table(se / clean / "clean.scp"), read_table(se / clean / "noise.scp")
        wav = read_datadir(se / noisy).wav_scp
        for utt, snr in snrs.items():
            s, n, y = _read_int(cscp[utt]), _read_int(nscp[utt]), _read_int(wav[utt])
            assert abs(snr_db(s, n) - float(snr)) < 0.01, (noisy, utt)
            np.testing.assert_array_equal(y, s + n)  # the written mixture is exactly speech + noise
    train = [float(v) for v in read_table(se / "train_noisy" / "utt2snr").values()]
    assert all(-5.0 <= v <= 10.0 for v in train) and len(set(train)) == len(train)
    test = read_table(se / "test_in_domain" / "utt2snr")
    assert sorted({float(v) for v in test.values()}) == [0.0, 5.0, 10.0]
    assert sorted(test) == sorted(read_datadir(se / "test_in_domain" / "ref").utts)
    for d in ("train_noisy", "test_in_domain", "test_in_domain/ref", "extra_noise"):
        assert validate_datadir(str(se / d)).ok, d


@pytest.mark.parametrize("snr", [-5.0, 0.0, 7.3, 10.0])
def test_mix_int16_snr(snr):
    rng = np.random.default_rng(1)
    s = 0.2 * rng.standard_normal(8000) * (np.arange(8000) > 2000)
    n = rng.standard_normal(8000) ** 3  # heavy-tailed: the noise may peak above the mixture
    m, si, ni, scale = mix_int16(s, n, snr)
    assert abs(snr_db(si.astype(float), ni.astype(float)) - snr) < 1e-3
    assert np.array_equal(m.astype(np.int32), si.astype(np.int32) + ni.astype(np.int32))
    assert max(np.abs(m).max(), np.abs(ni).max()) <= 0.9 * 32768 + 2


def test_noise_sets_disjoint(se_data):
    se = se_data / "se"
    parts = {p: set(read_datadir(se / p).utts) for p in ("noise_train", "extra_noise", "noise_test")}
    assert all(parts.values())
    assert not (parts["noise_train"] & parts["extra_noise"]) and not (parts["noise_train"] & parts["noise_test"])
    assert not (parts["extra_noise"] & parts["noise_test"])
    used_train = set(read_table(se / "train_noisy" / "utt2noise").values())
    assert used_train <= parts["noise_train"]
    assert set(read_table(se / "test_in_domain" / "utt2noise").values()) <= parts["noise_test"]
    assert set(read_table(se / "test_mismatched" / "utt2noise").values()) <= {"chirp_0", "chirp_1"}


def test_deterministic(se_data, tmp_path):
    prepare_se_data(str(se_data / "speech"), str(se_data / "noise"), str(tmp_path / "se"), MixPlan(seed=3))
    a, b = se_data / "se", tmp_path / "se"
    assert (a / "extra_noise" / "wav.scp").read_text() == (b / "extra_noise" / "wav.scp").read_text()
    for d in ("train_noisy", "test_in_domain", "test_mismatched"):
        assert (a / d / "utt2snr").read_text() == (b / d / "utt2snr").read_text()
        assert (a / d / "utt2noise").read_text() == (b / d / "utt2noise").read_text()
        wa, wb = read_datadir(a / d).wav_scp, read_datadir(b / d).wav_scp
        assert wa.keys() == wb.keys()
        for utt in wa:
            assert open(wa[utt], "rb").read() == open(wb[utt], "rb").read(), (d, utt)
    other = tmp_path / "se_seed4"
    prepare_se_data(str(se_data / "speech"), str(se_data / "noise"), str(other), MixPlan(seed=4))
    assert (other / "train_noisy" / "utt2snr").read_text() != (a / "train_noisy" / "utt2snr").read_text()


def _tiny_cfg(se, method: str = "nytt", **extra):
    over = [f"method={method}", "model=subband_gru", f"data.train_dir={se}/train_noisy",
            f"data.dev_dir={se}/dev_noisy", f"data.extra_noise_dir={se}/extra_noise", "data.segment_seconds=0.5",
            "data.batch_size=2", "trainer.max_steps=3", "trainer.val_every_steps=2", "trainer.ckpt_every_steps=2",
            "trainer.log_every_steps=1", "trainer.accelerator=cpu"] + [f"{k}={v}" for k, v in extra.items()]
    return load_se_config(None, over)


def test_training_never_reads_clean(se_data, tmp_path):
    """An audit hook records every file opened while NyTT training runs; then the clean dir is moved
    away and training runs again. Neither run may touch train_clean_eval_only."""
    from speechkd.enhance.train import run_se_training

    se = se_data / "se"
    clean = str((se / "train_clean_eval_only").resolve())
    opened: list[str] = []
    active = [True]

    def hook(event, args):
        if active[0] and event == "open" and args and isinstance(args[0], (str, bytes, os.PathLike)):
            opened.append(os.fsdecode(args[0]))

    def reads_clean() -> bool:
        return any(os.path.abspath(p).startswith(clean) for p in opened)

    sys.addaudithook(hook)  # cannot be removed: switched off through ``active`` below
    try:
        # positive control: the clean-target upper bound does read it, and the hook sees that
        run_se_training(_tiny_cfg(se, "clean", **{"data.clean_dir": clean}), str(tmp_path / "exp_c"),
                        progress_bar=False)
        assert reads_clean()
        opened.clear()
        run_se_training(_tiny_cfg(se), str(tmp_path / "exp_a"), progress_bar=False)
    finally:
        active[0] = False
    assert opened and any("train_noisy" in p for p in opened)
    assert not reads_clean()
    moved = tmp_path / "moved_clean"
    shutil.move(clean, moved)
    try:
        run_se_training(_tiny_cfg(se), str(tmp_path / "exp_b"), progress_bar=False)
        assert (tmp_path / "exp_b" / "checkpoints" / "last.ckpt").exists()
    finally:
        shutil.move(str(moved), clean)


def test_clean_dir_only_for_clean_method(se_data):
    from speechkd.errors import ConfigError

    se = se_data / "se"
    with pytest.raises(ConfigError, match="without clean speech"):
        _tiny_cfg(se, **{"data.clean_dir": f"{se}/train_clean_eval_only"})
    with pytest.raises(ConfigError, match="needs data.clean_dir"):
        _tiny_cfg(se, method="clean")
