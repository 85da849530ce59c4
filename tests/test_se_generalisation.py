"""SE data for the two generalisations (speechkd.enhance.prepare): speech of several corpora and
voices, speaker-disjoint training and unseen-voice test sets (checked on the written utt2spk),
noise types held out of training, and the test-set grid seen/unseen voice x seen/unseen noise type."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from se_fixtures import make_corpora
from speechkd.cli import main as cli
from speechkd.data.kaldi import read_datadir, read_table
from speechkd.enhance.prepare import MixPlan, check_speaker_disjoint, prepare_se_data
from speechkd.errors import DataDirError

GRID = ("test_in_domain", "test_unseen_noise", "test_unseen_voice", "test_unseen_voice_noise")


@pytest.fixture(scope="module")
def two_corpora(tmp_path_factory) -> tuple[Path, Path, Path]:
    tmp = tmp_path_factory.mktemp("gen")
    a, noise = make_corpora(tmp / "a", n_train=6, n_dev=3, n_test=3, speakers=("ann", "bob", "cat"))
    b, _ = make_corpora(tmp / "b", n_train=2, n_dev=1, n_test=1, speakers=("dan",), seed=1)
    return a, b, noise


@pytest.fixture(scope="module")
def grid(two_corpora, tmp_path_factory) -> Path:
    a, b, noise = two_corpora
    out = tmp_path_factory.mktemp("gen_se") / "se"
    prepare_se_data([str(a), str(b)], str(noise), str(out),
                    MixPlan(seed=2, unseen_speakers=("cat",), unseen_noise_types=("pink",)))
    return out


def _spk(d: Path) -> set[str]:
    return set(read_datadir(d).utt2spk.values())


def test_speaker_disjoint_splits_from_every_corpus(grid):
    training = _spk(grid / "train_noisy") | _spk(grid / "dev_noisy")
    assert training == {"ann", "bob", "dan"}  # both corpora, every voice but the unseen one
    assert _spk(grid / "train_clean_eval_only") <= training
    for name in ("test_unseen_voice", "test_unseen_voice_noise"):
        assert _spk(grid / name) == {"cat"} and _spk(grid / name / "ref") == {"cat"}
    for name in ("test_in_domain", "test_unseen_noise", "test_mismatched"):
        assert _spk(grid / name) <= training
    # unseen-voice material is as large as the seen-voice test set and spoken in no training mixture
    src = lambda d: {u.rsplit("_snr", 1)[0] for u in read_datadir(d).utts}  # noqa: E731
    assert len(src(grid / "test_unseen_voice")) == len(src(grid / "test_in_domain")) == 3
    assert not src(grid / "test_unseen_voice") & set(read_datadir(grid / "train_noisy").utts)
    m = json.loads((grid / "mix.json").read_text())
    assert m["unseen_speakers"] == ["cat"] and m["speakers"]["test_unseen_voice"] == ["cat"]
    assert check_speaker_disjoint(str(grid))["train_noisy"] == sorted(_spk(grid / "train_noisy"))


def test_a_leak_is_caught_on_the_written_utt2spk(grid, tmp_path):
    leak = tmp_path / "se"
    shutil.copytree(grid, leak)
    utt2spk = read_table(leak / "train_noisy" / "utt2spk")
    first = sorted(utt2spk)[0]
    (leak / "train_noisy" / "utt2spk").write_text(
        "".join(f"{u} {'cat' if u == first else s}\n" for u, s in sorted(utt2spk.items())))
    (leak / "train_noisy" / "spk2utt").unlink(missing_ok=True)
    with pytest.raises(DataDirError, match="cat of test_unseen_voice are in the training data"):
        check_speaker_disjoint(str(leak))


def test_noise_types_held_out_and_the_grid(grid):
    kind = {}
    for part in ("noise_train", "extra_noise", "noise_test", "noise_unseen"):
        utt2spk = read_datadir(grid / part).utt2spk
        kind.update(utt2spk)
        types = set(utt2spk.values())
        assert types == ({"pink"} if part == "noise_unseen" else {"white"}), part
    for name in ("train_noisy", "dev_noisy", "test_in_domain", "test_unseen_voice"):
        assert {kind[c] for c in read_table(grid / name / "utt2noise").values()} == {"white"}, name
    for name in ("test_unseen_noise", "test_unseen_voice_noise"):
        assert {kind[c] for c in read_table(grid / name / "utt2noise").values()} == {"pink"}, name
    for name in ("train_noisy", "dev_noisy") + GRID:  # each mixture's noise type, for the per-type tables
        types = read_table(grid / name / "utt2noise_type")
        assert types == {u: kind[c] for u, c in read_table(grid / name / "utt2noise").items()}, name
    for name in GRID:  # every cell at 0, 5 and 10 dB, with its clean references
        assert sorted({float(v) for v in read_table(grid / name / "utt2snr").values()}) == [0.0, 5.0, 10.0]
        assert read_datadir(grid / name / "ref").utts == read_datadir(grid / name).utts


def test_without_held_out_voices_or_noise_only_the_old_sets(two_corpora, tmp_path):
    a, _, noise = two_corpora
    m = prepare_se_data(str(a), str(noise), str(tmp_path / "se"), MixPlan(seed=2, test_snrs=(5.0,)))
    assert set(m["sets"]) == {"train_noisy", "dev_noisy", "test_in_domain", "test_mismatched"}


def test_se_data_cli_refuses_bad_generalisation_options(two_corpora, tmp_path, capsys):
    a, b, noise = two_corpora
    base = ["se-data", "--speech", str(a), str(b), "--noise", str(noise), "--test-snrs", "5"]
    assert cli(base + ["--out", str(tmp_path / "1"), "--unseen-speakers", "zed"]) == 2
    assert "unseen speaker(s) zed are in no speech corpus" in capsys.readouterr().err
    assert cli(base + ["--out", str(tmp_path / "2"), "--unseen-noise-types", "brown"]) == 2
    assert "not in-domain noise types" in capsys.readouterr().err
    assert cli(base + ["--out", str(tmp_path / "3"), "--unseen-noise-types", "white", "pink"]) == 2
    assert "nothing left to train with" in capsys.readouterr().err
    assert cli(["se-data", "--speech", str(a), str(a), "--noise", str(noise), "--out", str(tmp_path / "4")]) == 2
    assert "utterance id in two speech corpora" in capsys.readouterr().err


# ---- augmentation of the training crops (speechkd.enhance.data) --------------------------------
def _cfg(se: Path, method: str = "nytt", **extra):
    from speechkd.enhance.config import load_se_config

    over = [f"method={method}", "model=subband_gru", f"data.train_dir={se}/train_noisy",
            f"data.dev_dir={se}/dev_noisy", f"data.extra_noise_dir={se}/extra_noise", "data.segment_seconds=0.5",
            "data.batch_size=4"] + [f"{k}={v}" for k, v in extra.items()]
    return load_se_config(None, over)


def test_random_gain_scales_input_and_target_alike(grid):
    import numpy as np

    from speechkd.enhance.data import SEBatches, crop

    ds = SEBatches(_cfg(grid, "clean", **{"data.clean_dir": f"{grid}/train_clean_eval_only",
                                          "data.gain_db": "[-6.0, -6.0]"}))
    b = ds.batch(np.random.default_rng(0))
    g = 10 ** (-6 / 20)
    for k, (i, off) in enumerate(zip(b["index"].tolist(), b["offset"].tolist())):
        u = ds.utts[i]
        np.testing.assert_allclose(b["y"][k].numpy(), g * crop(ds.noisy[u], ds.length, off), rtol=1e-6)
        np.testing.assert_allclose(b["clean"][k].numpy(), g * crop(ds.paired[u], ds.length, off), rtol=1e-6)
    # a range draws a gain per crop
    ds2 = SEBatches(_cfg(grid, **{"data.gain_db": "[-12.0, 6.0]"}))
    b2 = ds2.batch(np.random.default_rng(0))
    ratios = [float(np.abs(b2["y"][k].numpy()).max() / np.abs(crop(ds2.noisy[ds2.utts[i]], ds2.length, o)).max())
              for k, (i, o) in enumerate(zip(b2["index"].tolist(), b2["offset"].tolist()))]
    assert all(10 ** (-12 / 20) - 1e-6 <= r <= 10 ** (6 / 20) + 1e-6 for r in ratios) and len(set(ratios)) == 4


def test_speed_perturbation_changes_tempo_and_pitch(grid):
    import numpy as np

    from speechkd.enhance.data import SEBatches, crop, speed

    sr, n = 16000, 8000
    tone = np.sin(2 * np.pi * 200 * np.arange(2 * n) / sr).astype(np.float32)
    for f in (0.9, 1.1):
        y = speed(tone[: round(n * f)], f, n)
        assert len(y) == n
        peak = np.argmax(np.abs(np.fft.rfft(y * np.hanning(n)))) * sr / n
        assert abs(peak - 200 * f) <= sr / n, (f, peak)
    ds = SEBatches(_cfg(grid, **{"data.speed_perturb": "[1.1]"}))
    b = ds.batch(np.random.default_rng(0))
    m = round(ds.length * 1.1)
    for k, (i, off) in enumerate(zip(b["index"].tolist(), b["offset"].tolist())):
        np.testing.assert_allclose(b["y"][k].numpy(), speed(crop(ds.noisy[ds.utts[i]], m, off), 1.1, ds.length))


def test_augmentation_settings_are_checked(grid):
    from speechkd.errors import ConfigError

    with pytest.raises(ConfigError, match="data.gain_db"):
        _cfg(grid, **{"data.gain_db": "[6.0, -6.0]"})
    with pytest.raises(ConfigError, match="data.speed_perturb"):
        _cfg(grid, **{"data.speed_perturb": "[3.0]"})
    with pytest.raises(ConfigError, match="un-augmented"):
        _cfg(grid, "remix_noisy", **{"remix.teacher": str(grid), "remix.ema_decay": "0.9", "remix.rounds": "2",
                                     "trainer.max_steps": "4", "data.gain_db": "[-6.0, 0.0]"})


def test_rehearsal_draws_its_rows_last_and_refuses_where_it_means_nothing(grid):
    import numpy as np
    import torch

    from speechkd.enhance.data import SEBatches
    from speechkd.errors import ConfigError

    online = {"remix.teacher": str(grid)}  # the batches never load the teacher
    plain = SEBatches(_cfg(grid, "remix_noisy", **online)).batch(np.random.default_rng(3))
    ds = SEBatches(_cfg(grid, "remix_noisy", **online, **{"remix.extra_noise": "0.5", "data.batch_size": "64"}))
    b = ds.batch(np.random.default_rng(3))
    assert b["extra"].shape == b["y"].shape and b["use_extra"].dtype == torch.bool
    assert 10 < int(b["use_extra"].sum()) < 54  # about half of 64 rows
    again = SEBatches(_cfg(grid, "remix_noisy", **online, **{"remix.extra_noise": "0.5"})).batch(
        np.random.default_rng(3))
    for k in ("y", "offset", "snr", "perm"):  # rehearsal leaves the remix run's other draws unchanged
        assert np.array_equal(again[k].numpy(), plain[k].numpy()), k
    assert "use_extra" not in plain and "extra" not in plain
    for method, extra, match in (("remixit", "0.5", "takes no extra noise"), ("remix_noisy", "1.5", "must lie")):
        with pytest.raises(ConfigError, match=match):
            _cfg(grid, method, **online, **{"remix.extra_noise": extra})
