"""The field's SE measure and peer: DNSMOS P.835 (speechkd.eval.dnsmos, from the speechmos wheel's
ONNX model) and RNNoise (speechkd.enhance.rnnoise, from the pyrnnoise wheel) with its lag measured
and removed; both in `speechkd eval se` / the SE systems. Skipped without the se-peers extra."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from se_fixtures import speechlike
from speechkd.cli import main as cli
from speechkd.corpora.common import resample
from speechkd.enhance import rnnoise
from speechkd.eval import dnsmos
from speechkd.eval.se_metrics import si_sdr

SR = 16000
needs_rnnoise = pytest.mark.skipif(not rnnoise.available(),
                                   reason="pyrnnoise not installed (pip install 'speechkd[se-peers]')")
needs_dnsmos = pytest.mark.skipif(not dnsmos.available(),
                                  reason="speechmos/onnxruntime not installed (pip install 'speechkd[se-peers]')")


def _noisy_speech(seed: int = 0, lead: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """(clean, noisy) at 16 kHz: ``lead`` s of noise alone, then speech-like tones in white noise (~5 dB)."""
    rng = np.random.default_rng(seed)
    s = np.concatenate([np.zeros(int(lead * SR), np.float32), speechlike(2.0, rng)])
    return s, (s + 0.03 * rng.standard_normal(len(s))).astype(np.float32)


# ---- RNNoise ------------------------------------------------------------------------------------
@needs_rnnoise
def test_rnnoise_lag_is_measured_and_removed():
    _, _, _, frame = rnnoise._lib()
    d = rnnoise.delay_samples()
    # a whole number of 10 ms frames, measured the same on another probe signal
    assert d > 0 and d % frame == 0 and d <= 4 * frame
    x = rnnoise.probe_signal(1.5, seed=7)
    assert rnnoise.measure_delay(x, rnnoise.process_48k(x)) == d
    # at 16 kHz, through the resamplers: the compensated output is aligned (searched both ways) ...
    x16 = resample(x, rnnoise.RATE, SR)
    y = rnnoise.rnnoise(x16, SR)
    assert len(y) == len(x16)
    assert abs(rnnoise.measure_delay(x16, y, max_lag=800, min_lag=-800)) <= 1
    # ... and the raw output lags by d/3 samples
    raw = resample(rnnoise.process_48k(resample(x16, SR, rnnoise.RATE)), rnnoise.RATE, SR)
    assert abs(rnnoise.measure_delay(x16, raw, max_lag=800, min_lag=-800) - d // 3) <= 1


@needs_rnnoise
def test_rnnoise_enhances_and_the_compensation_matters(monkeypatch):
    from speechkd.enhance.infer import Enhancer

    s, y = _noisy_speech()
    e = Enhancer("builtin:rnnoise")(y, SR)
    assert e.shape == y.shape and e.dtype == np.float32 and np.all(np.isfinite(e))
    pause = slice(SR // 2, SR)  # noise alone, after RNNoise has had 0.5 s to learn it
    assert 10 * np.log10(np.mean(e[pause] ** 2) / np.mean(y[pause] ** 2)) < -20
    gain = si_sdr(e, s) - si_sdr(y, s)
    assert gain > 5
    monkeypatch.setattr(rnnoise, "delay_samples", lambda: 0)  # the lag left in: scored 20 ms late
    assert si_sdr(Enhancer("builtin:rnnoise")(y, SR), s) - si_sdr(y, s) < gain - 10


def test_rnnoise_missing_is_one_clear_error(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(rnnoise, "available", lambda: False)
    sf.write(tmp_path / "x.wav", np.zeros(SR, np.float32), SR)
    assert cli(["enhance", "-i", str(tmp_path / "x.wav"), "-o", str(tmp_path / "y.wav"),
                "--model", "builtin:rnnoise"]) == 2
    assert "pyrnnoise" in capsys.readouterr().err
    (tmp_path / "exp").mkdir()
    assert cli(["enhance", "--systems", str(tmp_path / "s.tsv"), "--systems-from", str(tmp_path / "exp"),
                "--test-sets", "t"]) == 2  # the default baselines include rnnoise
    assert "--baselines" in capsys.readouterr().err


# ---- DNSMOS -------------------------------------------------------------------------------------
def test_dnsmos_windows_follow_the_challenge_script():
    for seconds, n in ((3.0, 3), (5.0, 1), (9.5, 1), (11.0, 2), (12.5, 3), (13.5, 4)):
        # shorter than 9.01 s: repeated end to end (3 s -> 12 s); then one window per second
        w = dnsmos.windows(np.ones(int(seconds * SR), np.float32))
        assert w.shape == (n, int(dnsmos.INPUT_SECONDS * SR)), seconds


@needs_dnsmos
def test_dnsmos_equals_speechmos_and_hears_the_noise():
    from speechmos import dnsmos as reference

    s, y = _noisy_speech(lead=3.0)  # 5 s: one window each
    ours = {k: dnsmos.dnsmos(x, SR) for k, x in (("clean", s), ("noisy", y))}
    theirs = reference.run(y, SR)
    for k, t in (("dnsmos_sig", "sig_mos"), ("dnsmos_bak", "bak_mos"), ("dnsmos_ovrl", "ovrl_mos")):
        assert ours["noisy"][k] == pytest.approx(float(theirs[t]), abs=1e-5)
    assert ours["clean"]["dnsmos_bak"] > ours["noisy"]["dnsmos_bak"] + 0.5
    # another rate is resampled to 16 kHz first
    y48 = resample(y, SR, 48000)
    assert dnsmos.dnsmos(y48, 48000) == dnsmos.dnsmos(resample(y48, 48000, SR), SR)


@pytest.fixture
def one_utt(tmp_path) -> Path:
    s, y = _noisy_speech(lead=3.0)
    for d, x in (("ref", s), ("noisy", y), ("enh", 0.5 * (s + y))):
        (tmp_path / d).mkdir()
        sf.write(tmp_path / d / "u1_snr5.wav", x, SR, subtype="FLOAT")
    return tmp_path


@needs_dnsmos
def test_eval_se_reports_dnsmos_and_the_summary_shows_it(one_utt):
    t = one_utt
    for name, enh in (("noisy", t / "noisy"), ("half", t / "enh")):
        assert cli(["eval", "se", "--ref-dir", str(t / "ref"), "--enh-dir", str(enh), "--noisy-dir", str(t / "noisy"),
                    "--out", str(t / "eval" / "set" / name), "--dnsmos", "on"]) == 0
    res = json.loads((t / "eval/set/half/results.json").read_text())
    row = res["utts"][0]
    for k in dnsmos.KEYS:
        assert 1 <= row[k] <= 5 and row[f"{k}_delta"] == pytest.approx(row[k] - row[f"{k}_noisy"])
    assert res["summary"]["dnsmos_bak_delta"]["mean"] > 0  # half the noise gone
    assert res["timing"]["dnsmos_rtf"] > 0
    assert "DNSMOS OVRL" in (t / "eval/set/half/results.md").read_text()
    noisy = json.loads((t / "eval/set/noisy/results.json").read_text())["utts"][0]
    assert noisy["dnsmos_ovrl_noisy"] == noisy["dnsmos_ovrl"] and noisy["dnsmos_ovrl_delta"] == 0
    assert row["dnsmos_ovrl_noisy"] == pytest.approx(noisy["dnsmos_ovrl"])
    assert cli(["eval", "se-summary", "--results", str(t / "eval/set/noisy/results.json"),
                str(t / "eval/set/half/results.json"), "--out", str(t / "eval")]) == 0
    md = (t / "eval/results.md").read_text()
    assert "| DNSMOS SIG | DNSMOS BAK | DNSMOS OVRL |" in md and "| half | 1 |" in md
    # --noisy-results: the noisy input's scores are read from its own row, not computed again: DNSMOS
    # for the same noisy audio, PESQ/STOI/SI-SDR only against the same clean reference
    tampered = json.loads((t / "eval/set/noisy/results.json").read_text())
    tampered["utts"][0].update(dnsmos_ovrl=4.5, si_sdr=-99.0, pesq=1.01)
    (t / "noisy.json").write_text(json.dumps(tampered))
    shutil.copytree(t / "ref", t / "ref2")
    for ref, out in (("ref", "eval2"), ("ref2", "eval3")):
        assert cli(["eval", "se", "--ref-dir", str(t / ref), "--enh-dir", str(t / "enh"), "--noisy-dir",
                    str(t / "noisy"), "--out", str(t / out), "--noisy-results", str(t / "noisy.json")]) == 0
    again = json.loads((t / "eval2/results.json").read_text())["utts"][0]
    assert again["dnsmos_ovrl_noisy"] == 4.5 and again["dnsmos_ovrl"] == pytest.approx(row["dnsmos_ovrl"])
    assert again["si_sdr_noisy"] == -99.0 and again["si_sdr_delta"] == pytest.approx(row["si_sdr"] + 99.0)
    assert again["pesq_noisy"] == 1.01 and again["stoi_noisy"] == row["stoi_noisy"]
    other_ref = json.loads((t / "eval3/results.json").read_text())["utts"][0]
    assert other_ref["dnsmos_ovrl_noisy"] == 4.5 and other_ref["si_sdr_noisy"] == pytest.approx(row["si_sdr_noisy"])
    # the results of other audio are not reused at all
    assert cli(["eval", "se", "--ref-dir", str(t / "ref"), "--enh-dir", str(t / "noisy"), "--noisy-dir", str(t / "enh"),
                "--out", str(t / "eval4"), "--noisy-results", str(t / "noisy.json"), "--dnsmos", "off"]) == 0
    swapped = json.loads((t / "eval4/results.json").read_text())["utts"][0]
    assert swapped["si_sdr_noisy"] == pytest.approx(row["si_sdr"]) and swapped["pesq_noisy"] == pytest.approx(row["pesq"])


def test_eval_se_dnsmos_off_and_missing(one_utt, monkeypatch, capsys):
    t = one_utt
    args = ["eval", "se", "--ref-dir", str(t / "ref"), "--enh-dir", str(t / "enh"), "--out", str(t / "o")]
    assert cli(args + ["--dnsmos", "off"]) == 0
    assert "dnsmos_ovrl" not in json.loads((t / "o/results.json").read_text())["summary"]
    monkeypatch.setattr(dnsmos, "available", lambda: False)
    capsys.readouterr()
    assert cli(args + ["--dnsmos", "on"]) == 2
    assert "speechmos" in capsys.readouterr().err
    assert cli(args) == 0  # auto: left out, said in the log


@needs_dnsmos
@needs_rnnoise
def test_stages_5_and_6_with_the_peer_and_dnsmos(tmp_path, monkeypatch):
    """enhance --systems lists rnnoise beside hpf80; eval se-systems scores DNSMOS, the noisy input's
    once (its own row, reused by the others)."""
    from se_fixtures import make_corpora
    from speechkd.enhance.prepare import MixPlan, prepare_se_data

    speech, noise = make_corpora(tmp_path, n_train=2, n_dev=1, n_test=1)
    prepare_se_data(str(speech), str(noise), str(tmp_path / "data" / "se"), MixPlan(seed=1, test_snrs=(5.0,)))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "exp").mkdir()
    assert cli(["enhance", "--systems", "exp/systems.tsv", "--systems-from", "exp", "--test-sets",
                "test_in_domain"]) == 0
    assert cli(["eval", "se-systems", "--systems", "exp/systems.tsv", "--test-sets", "test_in_domain",
                "--out", "exp/eval", "--dnsmos", "on"]) == 0
    rows = json.loads(Path("exp/eval/results.json").read_text())["systems"]
    assert [r["system"] for r in rows] == ["noisy", "hpf80", "rnnoise"]
    assert all(r["dnsmos_ovrl"]["mean"] is not None for r in rows)
    noisy = json.loads(Path("exp/eval/test_in_domain/noisy/results.json").read_text())["utts"]
    for name in ("hpf80", "rnnoise"):
        utts = json.loads(Path(f"exp/eval/test_in_domain/{name}/results.json").read_text())["utts"]
        assert [u["dnsmos_ovrl_noisy"] for u in utts] == [u["dnsmos_ovrl"] for u in noisy]
    assert "| rnnoise | 1 |" in Path("exp/eval/results.md").read_text()


def test_dnsmos_subset_is_evenly_spaced_and_scores_only_those(tmp_path, monkeypatch):
    from speechkd.eval import se_eval
    utts = [f"s{i:02d}_snr{snr:02d}" for i in range(4) for snr in (0, 5, 10)]
    pick = se_eval.dnsmos_subset(utts, 4)
    assert len(pick) == 4 and {u[-5:] for u in pick} == {"snr00", "snr05", "snr10"}  # every SNR, not one
    assert se_eval.dnsmos_subset(utts, 0) == set(utts) == se_eval.dnsmos_subset(utts, 99)
    # the network is replaced by a counter: only the subset is scored, the rest has no DNSMOS keys
    calls = []
    monkeypatch.setattr(se_eval.dnsmos_p835, "available", lambda: True)
    monkeypatch.setattr(se_eval.dnsmos_p835, "dnsmos",
                        lambda wav, sr: calls.append(1) or {k: 3.0 for k in dnsmos.KEYS})
    s, y = _noisy_speech(lead=0.2)
    for d, x in (("ref", s), ("enh", y)):
        (tmp_path / d).mkdir()
        for u in utts[:6]:
            sf.write(tmp_path / d / f"{u}.wav", x, SR, subtype="FLOAT")
    res = se_eval.evaluate_se(str(tmp_path / "ref"), str(tmp_path / "enh"), dnsmos="on", dnsmos_utts=2)
    assert len(calls) == 2 and res["summary"]["dnsmos_ovrl"]["n"] == 2 and res["summary"]["si_sdr"]["n"] == 6
    assert "– |" in se_eval.se_markdown(res, "t")
