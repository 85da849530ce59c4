"""Multi-speaker models: the speaker table from the dump's utt2spk, external embeddings, per-speaker
pitch/energy statistics, checkpoints (spk2id, old checkpoints), the teacher dump per speaker."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch

from fake_dump import make_fake_dump, tiny_overrides
from test_train_students import make_teacher_dump
from speechkd.checkpoints import load_model
from speechkd.data.speakers import Speakers, read_embeddings
from speechkd.errors import SpeechkdError
from speechkd.models import MODELS
from speechkd.train.config import load_train_config
from speechkd.train.datamodule import TTSDataModule
from speechkd.train.trainer import run_training

CONF = Path(__file__).resolve().parents[1] / "recipes/conf"


def _multi(root: Path) -> dict[str, Path]:
    paths = make_fake_dump(root, n_train=9, n_dev=3, n_speakers=3)
    make_teacher_dump(paths)
    return paths


@pytest.fixture(scope="module")
def multi(tmp_path_factory):
    """A 3-speaker dump with a (random) teacher dump, shared: tests must not change it."""
    return _multi(tmp_path_factory.mktemp("multi"))


@pytest.fixture
def fresh_multi(tmp_path):
    """A dump of one's own, to change."""
    return _multi(tmp_path)


@pytest.fixture(scope="module")
def ar_exp(multi, tmp_path_factory):
    """The AR teacher trained (tiny) on the 3-speaker dump."""
    exp = tmp_path_factory.mktemp("ar") / "exp_ar"
    run_training(_cfg("teacher_ar", multi), str(exp), progress_bar=False)
    return exp


def _cfg(name, paths, **extra):
    return load_train_config(CONF / f"{name}_tiny.yaml", tiny_overrides(paths, **extra))


def _dm(cfg) -> TTSDataModule:
    dm = TTSDataModule(cfg.data, needs=MODELS[cfg.model].batch_needs)
    dm.setup()
    return dm


def test_table_rows_batches_and_per_speaker_statistics(multi):
    dm = _dm(_cfg("fastspeech2", multi, **{"data.kd_mode": "teacher_forced"}))
    assert dm.speakers.ids == ["spk0", "spk1", "spk2"] and dm.speakers.n_table == 3
    lf0_means = [dm.speakers.variance_stats[s][0] for s in dm.speakers.ids]
    assert lf0_means == pytest.approx([4.5, 4.8, 5.1], abs=0.05)  # the fake dump's per-speaker register
    batch = next(iter(dm.train_dataloader()))
    assert batch["spk"].tolist() == [int(u[3]) for u in batch["utts"]]
    assert "spk" in next(iter(dm.val_dataloader()))


def test_single_speaker_dump_builds_the_model_it_always_did(tmp_path):
    paths = make_fake_dump(tmp_path, n_train=4, n_dev=2, n_speakers=1)
    dm = _dm(_cfg("teacher_ar", paths))
    assert not dm.speakers.conditioned and "spk" not in next(iter(dm.train_dataloader()))
    for name, cls in MODELS.items():  # no speaker parameters or buffers without speakers
        assert not [k for k in cls(cls.Config(), n_vocab=10, n_mels=80).state_dict() if "spk" in k or "speaker" in k]


def test_speaker_none_trains_speaker_agnostic(multi):
    dm = _dm(_cfg("teacher_ar", multi, **{"data.speakers": "none"}))
    assert not dm.speakers.conditioned


def test_teacher_learns_voices_and_checkpoint_round_trips(ar_exp):
    exp = ar_exp
    assert (exp / "spk2id").read_text() == "spk0 0\nspk1 1\nspk2 2\n"
    lm = load_model(str(exp))
    assert lm.speakers.ids == ["spk0", "spk1", "spk2"] and lm.multi_speaker
    toks, lens = torch.tensor([[3, 4, 5, 6]]), torch.tensor([4])
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    a = lm.model.inference(toks, lens, generator=g(), **lm.speaker_inputs(["spk0"]))["mel"]
    b = lm.model.inference(toks, lens, generator=g(), **lm.speaker_inputs(["spk2"]))["mel"]
    n = min(a.shape[1], b.shape[1])
    assert not torch.allclose(a[:, :n], b[:, :n])  # the voice changes the output
    with pytest.raises(SpeechkdError, match="unknown speaker 'spk9'.*spk0, spk1, spk2"):
        lm.speaker_inputs(["spk9"])
    with pytest.raises(SpeechkdError, match="needs a speaker"):
        lm.speaker_inputs([None])
    with pytest.raises(ValueError, match="pass spk"):
        lm.model.inference(toks, lens)


def test_fastspeech2_normalises_pitch_per_speaker(multi, tmp_path):
    exp = tmp_path / "exp_fs2"
    run_training(_cfg("fastspeech2", multi, **{"data.kd_mode": "teacher_forced"}), str(exp), progress_bar=False)
    lm = load_model(str(exp))
    st = lm.model.spk_pitch_stats
    assert st[:, 0].tolist() == pytest.approx([4.5, 4.8, 5.1], abs=0.05)
    toks, lens = torch.tensor([[3, 4, 5], [3, 4, 5]]), torch.tensor([3, 3])
    # the same normalised prediction is de-normalised into each speaker's register
    out = lm.model.inference(toks, lens, spk=torch.tensor([0, 2]), durations=torch.tensor([[2, 2, 2]] * 2))
    p = out["pitch"]
    expect = [(p[i] * st[s, 1] + st[s, 0]) for i, s in enumerate((0, 2))]
    assert torch.allclose(out["pitch_used"][0], expect[0]) and torch.allclose(out["pitch_used"][1], expect[1])
    # a given target log-F0 is standardised with the speaker's own statistics
    tgt = torch.full((1, 3), 5.1)
    o2 = lm.model.encode_condition(toks[:1], lens[:1], torch.tensor([[2, 2, 2]]), tgt, torch.ones(1, 3),
                                   spk=torch.tensor([2]))[2]
    assert torch.allclose(o2["pitch_used"], tgt, atol=1e-5)


def test_diffusion_and_its_progressive_students_take_speakers(multi, tmp_path):
    exp = tmp_path / "exp_diffusion"  # (FastSpeech shares FastSpeech 2's encoder path; the recipe test trains it)
    run_training(_cfg("diffusion", multi, **{"data.kd_mode": "teacher_forced"}), str(exp), progress_bar=False)
    lm = load_model(str(exp))
    assert lm.speakers.n_table == 3 and any("speaker.table" in k for k in lm.model.state_dict())
    out = lm.model.inference(torch.tensor([[3, 4, 5]]), torch.tensor([3]), **lm.speaker_inputs(["spk1"]))
    assert out["mel"].shape[0] == 1
    # the progressive students keep their teacher's voices
    from speechkd.config import load_config
    from speechkd.distill.progressive import ProgressiveConfig, run_progressive

    pcfg = load_config(ProgressiveConfig, CONF / "progressive_tiny.yaml")
    pcfg.trainer.accelerator, pcfg.trainer.devices, pcfg.rounds = "cpu", "1", 1
    (student,) = run_progressive(str(tmp_path / "exp_diffusion"), pcfg, progress_bar=False)
    lm = load_model(student)
    assert lm.speakers.ids == ["spk0", "spk1", "spk2"] and lm.model.cfg.steps == 4
    assert lm.model.inference(torch.tensor([[3, 4]]), torch.tensor([2]), **lm.speaker_inputs(["spk2"]))["mel"].numel()
    # and the step comparison (recipe stage 11) runs each dev utterance with its own voice
    from speechkd.cli import main as cli

    assert cli(["distill", "compare", "--exps", str(exp), student, "--split", "dev",
                "--out", str(tmp_path / "compare")]) == 0
    assert (tmp_path / "compare/results.json").is_file()


def test_external_embeddings(multi, tmp_path):
    emb = tmp_path / "xvector.txt"  # per speaker (plain) and one utterance of its own (Kaldi text ark)
    emb.write_text("spk0 1 0 0 0\nspk1 0 1 0 0\nspk2 0 0 1 0\nspk0_utt_train_00  [ 0.5 0.5 0 0 ]\n")
    table = read_embeddings(str(emb))
    assert table["spk0_utt_train_00"].tolist() == [0.5, 0.5, 0.0, 0.0]
    exp = tmp_path / "exp_emb"
    run_training(_cfg("teacher_ar", multi, **{"data.spk_embed": str(emb)}), str(exp), progress_bar=False)
    lm = load_model(str(exp))
    assert lm.speakers.embed_dim == 4 and lm.speakers.n_table == 3
    assert lm.speakers.embeddings["spk1"] == [0, 1, 0, 0]
    inp = lm.speaker_inputs(["spk1"])
    assert inp["spk_emb"].tolist() == [[0, 1, 0, 0]] and inp["spk"].tolist() == [1]
    for bad, msg in (("spk0 1 2\nspk1 1\n", "1 values, the first line has 2"), ("spk0 a b\n", "not numbers"),
                     ("", "empty")):
        emb.write_text(bad)
        with pytest.raises(SpeechkdError, match=msg):
            read_embeddings(str(emb))


def test_old_checkpoints_without_speakers_still_load(tmp_path):
    from test_synth import make_exp

    exp = make_exp(tmp_path, "transformer_tts")
    last = exp / "checkpoints/last.ckpt"
    ckpt = torch.load(last, weights_only=True)
    old = copy.deepcopy(ckpt)
    old["speechkd"].pop("speakers")
    torch.save(old, last)
    lm = load_model(str(exp))
    assert lm.speakers == Speakers() and lm.speaker_inputs(["anyone"]) == {}


def test_resume_refuses_other_speakers(ar_exp, fresh_multi, tmp_path):
    import shutil

    exp = tmp_path / "exp_r"
    shutil.copytree(ar_exp, exp)
    u2s = fresh_multi["dump"] / "tokens/train/utt2spk"
    u2s.write_text(u2s.read_text().replace(" spk2\n", " spk7\n"))
    with pytest.raises(SpeechkdError, match="speakers differ"):
        run_training(_cfg("teacher_ar", fresh_multi, **{"trainer.max_steps": 8}), str(exp), progress_bar=False)


def test_teacher_dump_runs_each_utterance_with_its_speaker(multi, ar_exp, tmp_path):
    from speechkd.distill.teacher_dump import DumpOptions, teacher_dump

    exp = ar_exp
    out = tmp_path / "tdump"
    teacher_dump(str(exp), str(multi["dump"]), "train", str(out), "teacher_forced", DumpOptions(min_aligned=0.0))
    import json

    rep = json.loads((out / "teacher_forced/report.json").read_text())
    assert sorted(rep["per_speaker"]) == ["spk0", "spk1", "spk2"]
    assert sum(v["num_utts"] for v in rep["per_speaker"].values()) == 9
    assert "## Per speaker" in (out / "teacher_forced/report.md").read_text()
    for line in (out / "teacher_forced/index.scp").read_text().splitlines():
        utt, rel, frames = line.split()
        z = np.load(out / "teacher_forced" / rel)
        assert int(z["durations"].sum()) == int(frames) and z["durations"].min() >= 1


# ---- synthesis ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def voiced(tmp_path_factory):
    from test_synth import make_exp

    root = tmp_path_factory.mktemp("spk_synth")
    sp = Speakers(ids=["awb", "rms", "slt"], variance_stats={s: [5.0 + i * 0.2, 0.3, 4.0, 6.0, 1.0, 0.5, 0.0, 3.0]
                                                             for i, s in enumerate(["awb", "rms", "slt"])})
    return make_exp(root, "fastspeech2", speakers=sp, name="fs2_multi")


def test_synthesizer_speaks_the_voice_asked_for(voiced):
    from speechkd.infer.synthesize import Synthesizer

    syn = Synthesizer.from_exp(str(voiced), device="cpu")
    assert syn.speakers == ["awb", "rms", "slt"]
    a, sr = syn("the quick fox", speaker="awb", seed=0)
    b, _ = syn("the quick fox", speaker="slt", seed=0)
    assert sr == syn.sample_rate and len(a) and not (len(a) == len(b) and np.allclose(a, b))
    with pytest.raises(SpeechkdError, match="unknown speaker 'bob'; the model knows: awb, rms, slt"):
        syn("the quick fox", speaker="bob")
    with pytest.raises(SpeechkdError, match="needs a speaker; it knows: awb, rms, slt"):
        syn("the quick fox")
    res = syn.batch(["the fox", "a dog"], ["u1", "u2"], speakers=["rms", "awb"], seed=0)
    assert [r.speaker for r in res] == ["rms", "awb"] and all(r.wav is not None for r in res)
    alone, _ = syn("a dog", speaker="awb", seed=0)  # the voice of a row does not leak into another
    assert np.allclose(res[1].wav, alone, atol=1e-5)


def test_cli_list_speakers_speaker_and_utt2spk(voiced, tmp_path, capsys):
    from speechkd.cli import main as cli

    assert cli(["synth", "--model", str(voiced), "--list-speakers"]) == 0
    assert capsys.readouterr().out.split() == ["awb", "rms", "slt"]
    lst, u2s, out = tmp_path / "text", tmp_path / "utt2spk", tmp_path / "out"
    lst.write_text("awb_1 the fox\nslt_2 a dog\n")
    u2s.write_text("awb_1 awb\nslt_2 slt\n")
    assert cli(["synth", "--model", str(voiced), "--list", str(lst), "--utt2spk", str(u2s), "-d", str(out)]) == 0
    rows = (out / "manifest.tsv").read_text().splitlines()
    assert rows[0].endswith("\tspeaker") and rows[1].endswith("\tawb") and rows[2].endswith("\tslt")
    assert cli(["synth", "--model", str(voiced), "--speaker", "rms", "the fox", "-o", str(tmp_path / "a.wav")]) == 0
    capsys.readouterr()
    assert cli(["synth", "--model", str(voiced), "the fox", "-o", str(tmp_path / "b.wav")]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "needs a speaker; it knows: awb, rms, slt" in err and "--speaker" in err
    assert cli(["synth", "--model", str(voiced), "--speaker", "zed", "the fox", "-o", str(tmp_path / "c.wav")]) == 2


# ---- evaluation ---------------------------------------------------------------------------------------
def _test_set(root: Path, speakers=("awb", "slt")) -> Path:
    from conftest import write_wav

    data = root / "data"
    data.mkdir(parents=True)
    rows = [(f"{s}_{i}", s, t) for s in speakers for i, t in enumerate(["the quick brown fox jumps over a lazy dog", "why yes the lazy dog jumps over the fox"])]
    for k, (u, s, _) in enumerate(rows):
        write_wav(root / "wav" / f"{u}.wav", seconds=0.6, seed=k)
    (data / "wav.scp").write_text("".join(f"{u} {root / 'wav' / u}.wav\n" for u, _, _ in rows))
    (data / "text").write_text("".join(f"{u} {t}\n" for u, _, t in rows))
    (data / "utt2spk").write_text("".join(f"{u} {s}\n" for u, s, _ in rows))
    return data


def test_eval_speakers_tables_and_the_diagonal_check(voiced, tmp_path, capsys):
    import json

    from speechkd.cli import main as cli
    from speechkd.eval.speaker_identity import _diagonal_rows

    data = _test_set(tmp_path)
    out = tmp_path / "ident"
    assert cli(["eval", "speakers", "--model", str(voiced), "--data-dir", str(data), "--out", str(out)]) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["speakers"] == ["awb", "slt"] and np.asarray(res["mcd"]).shape == (2, 2)
    rmse = np.asarray(res["lf0_rmse_cents"])
    assert rmse.shape == (2, 2) and res["diagonal_min_lf0_rmse"]["count"] == sum(res["diagonal_min_lf0_rmse"]["rows"])
    from speechkd.eval.speaker_identity import _distances

    mc = np.random.default_rng(0).standard_normal((20, 25))
    f0 = np.r_[np.zeros(5), np.linspace(100.0, 140.0, 15)]
    assert _distances(((mc, f0), (mc, f0))) == (0.0, 0.0)
    assert _distances(((mc, f0), (mc, f0 * 2 ** (100 / 1200))))[1] == pytest.approx(100.0)  # a semitone up
    assert sorted(p.name for p in (out / "wav/slt").iterdir()) == ["awb_0.wav", "awb_1.wav", "slt_0.wav", "slt_1.wav"]
    printed = capsys.readouterr().out
    assert "rows with their minimum on the diagonal: MCD" in printed and "log-F0 RMSE" in printed
    assert "## log-F0 RMSE on the DTW path" in (out / "results.md").read_text()
    # a rerun with the same checkpoint reuses the wavs; another checkpoint is refused, not scored stale
    before = (out / "wav/slt/awb_0.wav").stat().st_mtime_ns
    assert cli(["eval", "speakers", "--model", str(voiced), "--data-dir", str(data), "--out", str(out)]) == 0
    assert (out / "wav/slt/awb_0.wav").stat().st_mtime_ns == before
    stamp = json.loads((out / "wav/.speechkd_settings.json").read_text())
    (out / "wav/.speechkd_settings.json").write_text(json.dumps({**stamp, "step": stamp["step"] + 1}))
    assert cli(["eval", "speakers", "--model", str(voiced), "--data-dir", str(data), "--out", str(out)]) == 2
    assert "step" in capsys.readouterr().err and (out / "wav/slt/awb_0.wav").stat().st_mtime_ns == before
    assert cli(["eval", "speakers", "--model", str(voiced), "--data-dir", str(data), "--out", str(out),
                "--overwrite"]) == 0
    assert (out / "wav/.backup/1/slt/awb_0.wav").is_file() and (out / "wav/slt/awb_0.wav").is_file()
    ok = _diagonal_rows(np.array([[1.0, 2.0], [3.0, 2.5]]))
    bad = _diagonal_rows(np.array([[1.0, 2.0], [1.5, 2.5]]))
    assert ok == {"rows": [True, True], "all": True, "count": 2} and bad["rows"] == [True, False] and not bad["all"]
    nan = _diagonal_rows(np.array([[np.nan, 2.0], [np.nan, np.nan]]))  # unvoiced synthesis: no F0 to compare
    assert nan["rows"] == [False, False]
    one = _test_set(tmp_path / "one", speakers=("awb",))
    assert cli(["eval", "speakers", "--model", str(voiced), "--data-dir", str(one), "--out", str(tmp_path / "x")]) == 2


def test_eval_speakers_against_the_recordings_own_mels_through_the_vocoder(voiced, tmp_path, capsys):
    import json

    from speechkd.cli import main as cli
    from speechkd.config import to_dict

    data, feats = _test_set(tmp_path), tmp_path / "feats"
    fc = load_model(str(voiced)).feature_config
    assert cli(["features", "--data-dir", str(data), "--out", str(feats),
                *[f"{k}={v}" for k, v in to_dict(fc).items()]]) == 0
    out = tmp_path / "ident"
    args = ["eval", "speakers", "--model", str(voiced), "--data-dir", str(data), "--per-speaker", "1", "--out"]
    assert cli([*args, str(out)]) == 0
    before = (out / "wav/slt/awb_0.wav").stat().st_mtime_ns
    assert cli([*args, str(out), "--reference-feats", str(feats)]) == 0
    assert (out / "wav/slt/awb_0.wav").stat().st_mtime_ns == before  # the same wavs, not synthesized again
    rec = json.loads((out / "results.json").read_text())
    res = json.loads((out / "results_vocoded.json").read_text())
    assert res["reference"] == f"{feats} through griffin_lim" and "Reference: not the recordings" in \
        (out / "results_vocoded.md").read_text()
    # only the test utterances used (the first of each speaker) are vocoded
    assert sorted(p.name for p in (out / "reference").glob("*.wav")) == ["awb_0.wav", "slt_0.wav"]
    # the references differ from the recordings, so the tables do too
    assert rec["reference"] == "recordings" and not np.allclose(rec["mcd"], res["mcd"])
    capsys.readouterr()
    (feats / "feats.scp").write_text((feats / "feats.scp").read_text().splitlines()[-1] + "\n")
    assert cli([*args, str(tmp_path / "short"), "--reference-feats", str(feats)]) == 2
    assert "not in the feature dump" in capsys.readouterr().err


def test_eval_tts_reports_each_speaker(tmp_path):
    from speechkd.eval.tts_eval import per_speaker, speaker_markdown

    rows = [{"utt": "a1", "mcd": 5.0, "words": 4, "word_errors": 1}, {"utt": "a2", "mcd": 7.0, "words": 4,
                                                                       "word_errors": 3},
            {"utt": "b1", "mcd": 6.0, "words": 5, "word_errors": 0}]
    by = per_speaker(rows, {"a1": "A", "a2": "A", "b1": "B"})
    assert by["A"]["n"] == 2 and by["A"]["mcd"] == pytest.approx(6.0) and by["A"]["wer"] == pytest.approx(0.5)
    assert by["B"]["wer"] == 0.0 and per_speaker(rows, {"a1": "A", "a2": "A", "b1": "A"}) == {}
    assert "| A | 2 | 6.00 | 50.0 |" in "\n".join(speaker_markdown(by))


def test_one_speaker_utt2spk_changes_nothing(tmp_path):
    """A single-speaker dump trains to the same weights with or without its utt2spk (the model
    single-speaker recipes always trained)."""
    states = []
    for k, spk in enumerate((False, True)):
        paths = make_fake_dump(tmp_path / str(k), n_train=4, n_dev=2)
        if spk:
            for split in ("train", "dev"):
                tok = paths["dump"] / "tokens" / split
                (tok / "utt2spk").write_text("".join(f"{ln.split()[0]} slt\n" for ln in
                                                     (tok / "tokens").read_text().splitlines()))
        # one thread in both runs: the runner sizes threads to the cores free at start, and another
        # reduction order would change the last bits
        last = run_training(_cfg("teacher_ar", paths, **{"trainer.max_steps": 3, "trainer.num_threads": 1}),
                            str(tmp_path / f"e{k}"),
                            progress_bar=False)
        states.append(torch.load(last, weights_only=True)["state_dict"])
    assert states[0].keys() == states[1].keys()
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])


def test_dev_of_unseen_speakers_is_refused_with_a_remedy(fresh_multi):
    multi = fresh_multi
    u2s = multi["dump"] / "tokens/dev/utt2spk"
    u2s.write_text("".join(f"{ln.split()[0]} newvoice\n" for ln in u2s.read_text().splitlines()))
    with pytest.raises(SpeechkdError, match="no dev utterance is spoken by a training speaker.*data.speakers=none"):
        _dm(_cfg("teacher_ar", multi))
    assert not _dm(_cfg("teacher_ar", multi, **{"data.speakers": "none"})).speakers.conditioned


def test_one_speaker_with_an_external_embedding(tmp_path):
    paths = make_fake_dump(tmp_path, n_train=4, n_dev=2, n_speakers=1)
    emb = tmp_path / "dvec.txt"
    emb.write_text("spk0 0.3 -0.4\n")
    exp = tmp_path / "exp"
    run_training(_cfg("teacher_ar", paths, **{"data.spk_embed": str(emb)}), str(exp), progress_bar=False)
    lm = load_model(str(exp))
    assert lm.speakers.n_table == 0 and lm.speakers.embed_dim == 2 and lm.speakers.known == ["spk0"]
    assert set(lm.speaker_inputs(["spk0"])) == {"spk_emb"} and not (exp / "spk2id").exists()
    with pytest.raises(SpeechkdError, match="unknown speaker 'x'; the model knows: spk0"):
        lm.speaker_inputs(["x"])


@pytest.mark.parametrize("embedding", ["speaker", "global"])
def test_fastspeech2_variance_embedding_sees_the_register_only_when_global(embedding):
    from types import SimpleNamespace

    from speechkd.models.fastspeech2 import FastSpeech2, FastSpeech2Config
    m = FastSpeech2(FastSpeech2Config(d_model=32, n_heads=2, enc_layers=1, dec_layers=1, conv_filter=32,
                                      predictor_channels=16, variance_embedding=embedding), 10, 8, n_speakers=2)
    m.set_stats(SimpleNamespace(lf0_mean=5.0, lf0_std=0.4, lf0_min=4.0, lf0_max=6.2, energy_mean=1.0,
                                energy_std=0.5, energy_min=0.0, energy_max=3.0))
    # two voices an octave apart (log 2 = 0.69), same spread
    m.set_speaker_stats([[4.6, 0.1, 4.3, 4.9, 1.0, 0.5, 0.0, 3.0], [5.3, 0.1, 5.0, 5.6, 1.0, 0.5, 0.0, 3.0]])
    same = torch.full((2, 3), 5.0)  # one absolute log-F0, asked of both voices
    spk = torch.tensor([0, 1])
    seen = m._embedded(m._normalise(same, "pitch", spk), "pitch", spk)
    if embedding == "global":  # one pitch, one bucket, whoever speaks; the buckets span the global range
        assert torch.allclose(seen[0], seen[1], atol=1e-5) and torch.allclose(seen, torch.zeros(2, 3), atol=1e-5)
        assert m.pitch_stats[2:].tolist() == pytest.approx([-2.5, 3.0])
    else:  # the speaker-normalised value: 4 std above one voice's mean, 3 below the other's
        assert seen[0].tolist() == pytest.approx([4.0] * 3, abs=1e-4)
        assert seen[1].tolist() == pytest.approx([-3.0] * 3, abs=1e-4)
        assert m.pitch_stats[2:].tolist() == pytest.approx([-3.0, 3.0], abs=1e-4)
