"""The systems of SE recipe stages 5-7 (speechkd.enhance.systems): which exist for which exp dirs,
their spread, the manifest file, and the stage verbs that take it (enhance --systems, eval
se-systems, listen manifest --systems) on the built-in high-pass baseline. No training: a model
counts as trained when its checkpoints/ dir exists."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from se_fixtures import make_corpora
from speechkd.cli import main as cli
from speechkd.enhance.prepare import MixPlan, prepare_se_data
from speechkd.enhance.systems import (COLUMNS, SeSystem, enhance_jobs, is_manifest, list_systems, read_manifest,
                                      write_manifest)
from speechkd.errors import SpeechkdError
from speechkd.eval.se_systems import eval_jobs, up_to_date

STUDENTS = ["student_remix", "student_small"]


def _exp(root: Path, trained: list[str]) -> Path:
    exp = root / "exp"
    exp.mkdir(parents=True, exist_ok=True)
    for name in trained:
        (exp / name / "checkpoints").mkdir(parents=True)
    return exp


def test_the_systems_of_a_full_run_in_table_order(tmp_path):
    exp = _exp(tmp_path, ["teacher_nytt", "teacher_nytt_more", "clean_upper", *STUDENTS])
    systems = list_systems(str(exp), STUDENTS, spread=2)
    p = lambda n: str(exp / n)  # noqa: E731
    assert systems == [
        SeSystem("hpf80", "builtin:highpass80", "", 0, p("hpf80")),
        SeSystem("teacher_nytt", p("teacher_nytt"), "", 2, p("teacher_nytt")),
        SeSystem("teacher_nytt_more", p("teacher_nytt_more"), "", 2, p("teacher_nytt_more")),
        SeSystem("clean_upper", p("clean_upper"), "", 0, p("clean_upper")),  # no claim rests on its spread
        SeSystem("student_remix", p("student_remix"), "", 2, p("student_remix")),
        SeSystem("student_small", p("student_small"), "", 2, p("student_small")),
        SeSystem("student_remix_st", p("student_remix"), p("teacher_nytt"), 0, p("student_remix_st")),
        SeSystem("student_small_st", p("student_small"), p("teacher_nytt"), 0, p("student_small_st"))]
    assert systems[1].enhanced_dir("test_a") == os.path.join(p("teacher_nytt"), "enhanced", "test_a")
    assert systems[1].enhanced_dir("test_a", 2) == os.path.join(p("teacher_nytt"), "enhanced_ckpt2", "test_a")
    # spread off, or only some systems' spread
    assert all(s.spread == 0 for s in list_systems(str(exp), STUDENTS))
    only = list_systems(str(exp), STUDENTS, spread=1, spread_only=["teacher_nytt", "student_small_st", "hpf80"])
    assert [s.name for s in only if s.spread] == ["teacher_nytt"]


def test_the_baselines(tmp_path, monkeypatch):
    from speechkd.enhance import rnnoise

    exp = _exp(tmp_path, ["teacher_nytt"])
    monkeypatch.setattr(rnnoise, "available", lambda: True)
    both = list_systems(str(exp), [], spread=1, baselines=["rnnoise", "hpf80"])  # table order, not the given one
    assert [(s.name, s.model, s.spread) for s in both] == [
        ("hpf80", "builtin:highpass80", 0), ("rnnoise", "builtin:rnnoise", 0), ("teacher_nytt", str(exp / "teacher_nytt"), 1)]
    assert [s.name for s in list_systems(str(exp), [], baselines=[])] == ["teacher_nytt"]
    with pytest.raises(SpeechkdError, match="unknown baseline 'wiener'"):
        list_systems(str(exp), [], baselines=["wiener"])
    monkeypatch.setattr(rnnoise, "available", lambda: False)
    with pytest.raises(SpeechkdError, match="needs the pyrnnoise wheel"):
        list_systems(str(exp), [], baselines=["hpf80", "rnnoise"])


def test_what_is_untrained_adds_no_system(tmp_path):
    # no control, no upper bound, student_small not trained (its exp dir exists without checkpoints)
    exp = _exp(tmp_path, ["teacher_nytt", "student_remix"])
    (exp / "student_small").mkdir()
    systems = list_systems(str(exp), STUDENTS, spread=1)
    assert [(s.name, s.spread) for s in systems] == [("hpf80", 0), ("teacher_nytt", 1), ("student_remix", 1),
                                                     ("student_remix_st", 0)]
    # nothing trained: the baseline alone
    assert [s.name for s in list_systems(str(_exp(tmp_path / "b", [])), STUDENTS, spread=3)] == ["hpf80"]
    with pytest.raises(SpeechkdError, match="two systems named teacher_nytt"):
        list_systems(str(exp), ["teacher_nytt"])
    with pytest.raises(SpeechkdError, match="not one file name"):
        list_systems(str(exp), ["../x"])
    with pytest.raises(SpeechkdError, match=">= 0"):
        list_systems(str(exp), STUDENTS, spread=-1)


def test_jobs_in_recipe_order_and_the_up_to_date_rule(tmp_path):
    exp = _exp(tmp_path, ["teacher_nytt", "student_remix"])
    systems = list_systems(str(exp), ["student_remix"], spread=2)
    jobs = enhance_jobs(systems, ["a", "b"], "data/se")
    assert [(j.system.name, j.checkpoint, j.test_set) for j in jobs] == [
        ("hpf80", 0, "a"), ("hpf80", 0, "b"), ("teacher_nytt", 0, "a"), ("teacher_nytt", 0, "b"),
        ("student_remix", 0, "a"), ("student_remix", 0, "b"), ("student_remix_st", 0, "a"),
        ("student_remix_st", 0, "b"),
        ("teacher_nytt", 1, "a"), ("teacher_nytt", 1, "b"), ("teacher_nytt", 2, "a"), ("teacher_nytt", 2, "b"),
        ("student_remix", 1, "a"), ("student_remix", 1, "b"), ("student_remix", 2, "a"), ("student_remix", 2, "b")]
    assert jobs[8].data_dir == os.path.join("data/se", "a") and jobs[8].out_dir == str(
        exp / "teacher_nytt" / "enhanced_ckpt1" / "a")
    ev = eval_jobs(systems, ["a", "b"], "data/se", "exp/eval")
    assert [j.system for j in ev if j.test_set == "a"] == [
        "noisy", "hpf80", "teacher_nytt", "student_remix", "student_remix_st",
        "teacher_nytt@ckpt1", "teacher_nytt@ckpt2", "student_remix@ckpt1", "student_remix@ckpt2"]
    noisy, ck = ev[0], ev[6]
    assert (noisy.ref_dir, noisy.enh_dir, noisy.noisy_dir, noisy.out, noisy.title) == (
        "data/se/a/ref", "data/se/a", "data/se/a", "exp/eval/a/noisy", "noisy input: a")
    assert (ck.enh_dir, ck.out, ck.title) == (str(exp / "teacher_nytt" / "enhanced_ckpt2" / "a"),
                                              "exp/eval/a/teacher_nytt@ckpt2", "teacher_nytt, checkpoint 2 alone: a")
    # results.json newer than the enhanced dir's enhance.json: up to date; older, or either missing: not
    job = eval_jobs(systems, ["a"], str(tmp_path / "data"), str(tmp_path / "eval"))[1]
    os.makedirs(job.enh_dir)
    os.makedirs(job.out)
    enh, res = Path(job.enh_dir) / "enhance.json", Path(job.results)
    assert not up_to_date(job)
    res.write_text("{}")
    assert not up_to_date(job)
    enh.write_text("{}")
    os.utime(enh, ns=(1_000_000_000, 1_000_000_000))
    assert up_to_date(job)
    os.utime(enh, ns=(4_000_000_000_000_000_000, 4_000_000_000_000_000_000))
    assert not up_to_date(job)
    assert not up_to_date(ev[0])  # the noisy input has no enhance.json: always evaluated


def test_manifest_round_trip_and_bad_manifests(tmp_path, capsys):
    exp = _exp(tmp_path, ["teacher_nytt", "teacher_nytt_more", "clean_upper", *STUDENTS])
    systems = list_systems(str(exp), STUDENTS, spread=1)
    path = tmp_path / "exp" / "systems.tsv"
    write_manifest(str(path), systems)
    assert path.read_text().splitlines()[0].split("\t") == list(COLUMNS)
    assert read_manifest(str(path)) == systems and is_manifest(str(path))
    lines = path.read_text().splitlines()
    head, hpf, teacher, st = lines[0], lines[1], lines[2], lines[-1]

    def bad(rows: list[str], match: str) -> None:
        p = tmp_path / "bad.tsv"
        p.write_text("\n".join(rows) + "\n")
        with pytest.raises(SpeechkdError, match=match):
            read_manifest(str(p))
        # through the verb: exit 2, one line naming the file
        assert cli(["eval", "se-systems", "--systems", str(p), "--test-sets", "a", "--out",
                    str(tmp_path / "eval")]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and str(p) in err and not (tmp_path / "eval").exists()

    bad(["name\tkind\tmodel"], "header must be")
    bad([head, hpf + "\textra"], "line 2: 6 fields, 5 expected")
    bad([head, hpf.replace("hpf80", "../x", 1)], "not one file name")
    bad([head, teacher.replace("\t1\t", "\tmany\t")], "spread 'many' is not a whole number")
    bad([head, st.replace("\t0\t", "\t1\t")], "has a spread but no single checkpoints")
    bad([head, hpf.replace("builtin:highpass80", "")], "has no model")
    bad([head, hpf, teacher, hpf], "system hpf80 appears twice")
    with pytest.raises(SpeechkdError, match="does not exist"):
        read_manifest(str(tmp_path / "none.tsv"))
    assert not is_manifest(str(tmp_path / "none.tsv"))


def test_enhance_arguments(tmp_path, capsys):
    m = str(tmp_path / "systems.tsv")
    d = str(tmp_path)  # an existing dir wherever the parser checks one: the combination is what is wrong
    assert cli(["enhance", "--systems", m, "--systems-from", d, "--model", "builtin:highpass80",
                "--test-sets", "a"]) == 2
    assert "--model do not go with it" in capsys.readouterr().err
    assert cli(["enhance", "--systems", m, "--systems-from", d]) == 2
    assert "no test set given" in capsys.readouterr().err
    assert cli(["enhance", "--systems", m, "--students", "s", "--test-sets", "a"]) == 2
    assert "go with --systems-from" in capsys.readouterr().err
    assert cli(["enhance", "--data-dir", d, "--out-dir", str(tmp_path / "o"), "--model", "builtin:highpass80",
                "--spread", "2"]) == 2
    assert "--spread goes with --systems" in capsys.readouterr().err
    assert cli(["enhance", "--data-dir", d, "--out-dir", str(tmp_path / "o")]) == 2
    assert "no model given" in capsys.readouterr().err


@pytest.fixture(scope="module")
def se_data(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("se_systems")
    speech, noise = make_corpora(tmp, n_train=2, n_dev=1, n_test=1)
    prepare_se_data(str(speech), str(noise), str(tmp / "data" / "se"), MixPlan(seed=1, test_snrs=(5.0,)))
    return tmp


def test_stages_5_to_7_on_the_high_pass_baseline(se_data, tmp_path, capsys, monkeypatch):
    """Enhance, evaluate and list the systems of an exp dir with nothing trained (the baseline):
    one call each; a rerun skips what is done."""
    monkeypatch.chdir(tmp_path)
    os.symlink(se_data / "data", "data")
    os.mkdir("exp")
    tests = ["test_in_domain", "test_mismatched"]
    assert cli(["enhance", "--systems", "exp/systems.tsv", "--systems-from", "exp", "--students", "student_remix",
                "--spread", "1", "--test-sets", " ".join(tests), "--average", "3", "--baselines", "hpf80"]) == 0
    assert [s.name for s in read_manifest("exp/systems.tsv")] == ["hpf80"]
    for t in tests:
        n = len(Path(f"data/se/{t}/utt2spk").read_text().splitlines())
        assert len(list(Path(f"exp/hpf80/enhanced/{t}").glob("*.wav"))) == n
        assert json.loads(Path(f"exp/hpf80/enhanced/{t}/enhance.json").read_text())["model"] == "builtin:highpass80"
    capsys.readouterr()
    assert cli(["enhance", "--systems", "exp/systems.tsv", "--test-sets", *tests]) == 0
    assert capsys.readouterr().out.count("already enhanced") == 2

    assert cli(["eval", "se-systems", "--systems", "exp/systems.tsv", "--test-sets", *tests, "--out", "exp/eval",
                "--title", "SE", "--dnsmos", "off"]) == 0
    table = json.loads(Path("exp/eval/results.json").read_text())["systems"]
    assert [(r["test_set"], r["system"]) for r in table] == [(t, s) for t in tests for s in ("noisy", "hpf80")]
    md = Path("exp/eval/results.md").read_text()
    assert "## test_mismatched" in md
    # the overview: systems x test sets, one table per measure
    overview = md.split("### SI-SDRi dB by test set", 1)[1].split("###", 1)[0]
    assert "| system | test_in_domain | test_mismatched |" in overview
    hpf = {r["test_set"]: r["si_sdr_delta"]["mean"] for r in table if r["system"] == "hpf80"}
    assert f"| hpf80 | {hpf['test_in_domain']:+.2f} | {hpf['test_mismatched']:+.2f} |" in overview
    capsys.readouterr()
    assert cli(["eval", "se-systems", "--systems", "exp/systems.tsv", "--test-sets", *tests, "--out", "exp/eval",
                "--dnsmos", "off"]) == 0
    assert capsys.readouterr().out.count("not evaluated again") == 2  # the systems; the noisy input is redone

    assert cli(["listen", "manifest", "--data-dir", "data/se/test_in_domain", "--system",
                "clean=data/se/test_in_domain/ref", "--system", "noisy=data/se/test_in_domain", "--systems",
                "exp/systems.tsv", "--reference", "clean", "--out", "exp/listen/manifest.json"]) == 0
    m = json.loads(Path("exp/listen/manifest.json").read_text())
    assert m["systems"] == ["clean", "noisy", "hpf80"]
    assert all(u["systems"]["hpf80"].endswith(f"hpf80/enhanced/test_in_domain/{u['id']}.wav") for u in m["utts"])
