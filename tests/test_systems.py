"""The systems of recipe stages 10-12 (speechkd.infer.systems): which exist for which exp dirs,
their order, their pairs, the manifest file and the verbs that take it. No training: a model or
vocoder counts as trained when its checkpoints/last.ckpt exists."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from speechkd.errors import SpeechkdError
from speechkd.infer.systems import COLUMNS, diffusion_chain, list_systems, pairs, read_manifest, write_manifest


def _exp(root: Path, trained: list[str], untrained: list[str] = ()) -> Path:
    exp = root / "exp"
    for name in trained:
        (exp / name / "checkpoints").mkdir(parents=True)
        (exp / name / "checkpoints" / "last.ckpt").write_bytes(b"")
    for name in untrained:  # an exp dir without a final checkpoint, or a system's own output dir
        (exp / name / "synth" / "test").mkdir(parents=True)
    (exp / "eval").mkdir(parents=True, exist_ok=True)
    return exp


# What the tiny recipe trains: every model, the diffusion teacher and its students, one vocoder.
TINY = ["teacher_ar", "fastspeech", "fastspeech2", "diffusion_8", "diffusion_4", "diffusion_2", "vocoder_vocos"]


def test_every_system_of_a_full_run_in_table_order(tmp_path):
    exp = _exp(tmp_path, TINY, untrained=["diffusion_8_steps2", "resynth_griffin_lim"])
    systems = list_systems(str(exp), "test", diffusion_steps=8)
    assert [s.name for s in systems] == [
        "resynth_griffin_lim", "resynth_vocos", "resynth_world",
        "diffusion_2", "diffusion_2_vocos", "diffusion_4", "diffusion_4_vocos", "diffusion_8",
        "diffusion_8_steps2", "diffusion_8_steps2_vocos", "diffusion_8_steps4", "diffusion_8_steps4_vocos",
        "diffusion_8_vocos", "fastspeech", "fastspeech2", "fastspeech2_vocos", "fastspeech_vocos",
        "teacher_ar", "teacher_ar_vocos"]
    by = {s.name: s for s in systems}
    assert all(s.wav_dir == os.path.join(str(exp), s.name, "synth", "test") for s in systems)
    assert (by["resynth_griffin_lim"].kind, by["resynth_griffin_lim"].vocoder) == ("copy", "griffin_lim")
    assert (by["resynth_world"].kind, by["resynth_vocos"].vocoder) == ("world", str(exp / "vocoder_vocos"))
    t = by["diffusion_8_steps2_vocos"]
    assert (t.kind, t.model, t.steps, t.vocoder) == ("model", str(exp / "diffusion_8"), 2, str(exp / "vocoder_vocos"))
    assert by["fastspeech2"].model == str(exp / "fastspeech2") and by["fastspeech2"].steps == 0
    assert pairs(systems) == [
        ("diffusion_2", "resynth_griffin_lim"), ("diffusion_2_vocos", "resynth_vocos"),
        ("diffusion_4", "resynth_griffin_lim"), ("diffusion_4_vocos", "resynth_vocos"),
        ("diffusion_8", "resynth_griffin_lim"), ("diffusion_8_steps2", "resynth_griffin_lim"),
        ("diffusion_8_steps2_vocos", "resynth_vocos"), ("diffusion_8_steps4", "resynth_griffin_lim"),
        ("diffusion_8_steps4_vocos", "resynth_vocos"), ("diffusion_8_vocos", "resynth_vocos"),
        ("fastspeech", "resynth_griffin_lim"), ("fastspeech2", "resynth_griffin_lim"),
        ("fastspeech2_vocos", "resynth_vocos"), ("fastspeech_vocos", "resynth_vocos"),
        ("teacher_ar", "resynth_griffin_lim"), ("teacher_ar_vocos", "resynth_vocos"),
        # each k-step student against the teacher sampled with k steps, through the same vocoder
        ("diffusion_2", "diffusion_8_steps2"), ("diffusion_2_vocos", "diffusion_8_steps2_vocos"),
        ("diffusion_4", "diffusion_8_steps4"), ("diffusion_4_vocos", "diffusion_8_steps4_vocos")]
    assert diffusion_chain(systems) == [str(exp / f"diffusion_{k}") for k in (2, 4, 8)]


def test_what_is_untrained_or_missing_adds_no_system(tmp_path):
    # no vocoder, an unfinished fastspeech, students without their teacher
    exp = _exp(tmp_path, ["teacher_ar", "fastspeech2", "diffusion_4", "diffusion_2"], untrained=["fastspeech"])
    systems = list_systems(str(exp), "test", diffusion_steps=8)
    assert [s.name for s in systems] == ["resynth_griffin_lim", "resynth_world", "diffusion_2", "diffusion_4",
                                         "fastspeech2", "teacher_ar"]
    assert all(not s.teacher for s in systems)
    assert ("diffusion_2", "resynth_griffin_lim") in pairs(systems) and len(pairs(systems)) == 4
    # only copy synthesis in an exp dir with nothing trained
    assert [s.name for s in list_systems(str(_exp(tmp_path / "b", [])), "test")] == ["resynth_griffin_lim",
                                                                                      "resynth_world"]


def test_students_are_below_the_teachers_step_count(tmp_path):
    # N = 4: diffusion_8 is a model of its own, not a student; diffusion_2 is the student
    exp = _exp(tmp_path, ["diffusion_8", "diffusion_4", "diffusion_2", "diffusion_x"])
    systems = list_systems(str(exp), "dev", diffusion_steps=4)
    names = [s.name for s in systems]
    assert "diffusion_4_steps2" in names and not any("steps8" in n or "steps4" in n for n in names)
    assert "diffusion_x" in names and ("diffusion_2", "diffusion_4_steps2") in pairs(systems)
    assert diffusion_chain(systems) == [str(exp / f"diffusion_{k}") for k in (2, 4, 8)]
    with pytest.raises(SpeechkdError, match="exp dir does not exist"):
        list_systems(str(tmp_path / "none"), "test")


def test_manifest_round_trip_and_bad_manifests(tmp_path):
    exp = _exp(tmp_path, TINY)
    systems = list_systems(str(exp), "test")
    path = tmp_path / "exp" / "systems.tsv"
    write_manifest(str(path), systems)
    assert path.read_text().splitlines()[0].split("\t") == list(COLUMNS)
    assert read_manifest(str(path)) == systems
    lines = path.read_text().splitlines()

    def bad(text: str, match: str) -> None:
        p = tmp_path / "bad.tsv"
        p.write_text(text)
        with pytest.raises(SpeechkdError, match=match):
            read_manifest(str(p))

    bad("name\tkind\n", "header must be")
    bad("\n".join([lines[0], lines[1] + "\textra"]), "line 2: 9 fields")
    bad("\n".join([lines[0], lines[1].replace("resynth_griffin_lim", "../x", 1)]), "not one file name")
    bad("\n".join([lines[0], lines[1].replace("copy", "magic", 1)]), "unknown kind 'magic'")
    bad("\n".join([lines[0], lines[1], lines[1]]), "appears twice")
    student = next(ln for ln in lines if ln.startswith("diffusion_2\t"))
    bad("\n".join([lines[0], lines[1], student]), "teacher 'diffusion_8_steps2' is not in the manifest")
    with pytest.raises(SpeechkdError, match="does not exist"):
        read_manifest(str(tmp_path / "none.tsv"))


def test_synth_systems_arguments(tmp_path, capsys):
    from speechkd.cli import main

    exp = _exp(tmp_path, [])
    m = str(tmp_path / "systems.tsv")
    d = f = str(tmp_path)  # existing dirs: the parser accepts them, the combination is what is wrong
    assert main(["synth", "--systems", m, "--systems-from", str(exp), "--feats", f]) == 2
    assert "--systems needs --data-dir" in capsys.readouterr().err
    assert main(["synth", "--systems", m, "--model", str(exp), "--data-dir", d, "--feats", f]) == 2
    assert "leave out --model" in capsys.readouterr().err
    assert main(["synth", "--feats", f, "hello"]) == 2
    assert "--feats goes with --systems" in capsys.readouterr().err
    assert main(["synth", "hello", "-o", str(tmp_path / "x.wav")]) == 2
    assert "no model given" in capsys.readouterr().err


def test_listen_manifest_takes_the_systems_manifest(tmp_path, tiny_datadir):
    from speechkd.cli import main

    exp = _exp(tmp_path, ["teacher_ar"])
    systems = list_systems(str(exp), "test")
    wavs = dict(ln.split() for ln in (tiny_datadir / "wav.scp").read_text().splitlines())
    for s in systems:  # every system "synthesised" the test set: links to the ground truth
        os.makedirs(s.wav_dir)
        for u, w in wavs.items():
            os.link(w, os.path.join(s.wav_dir, f"{u}.wav"))
    write_manifest(str(tmp_path / "systems.tsv"), systems)
    out = tmp_path / "listen/manifest.json"
    assert main(["listen", "manifest", "--data-dir", str(tiny_datadir), "--system", f"ground_truth={tiny_datadir}",
                 "--systems", str(tmp_path / "systems.tsv"), "--out", str(out)]) == 0
    assert json.loads(out.read_text())["systems"] == ["ground_truth", "resynth_griffin_lim", "resynth_world",
                                                      "teacher_ar"]



def test_eval_systems_needs_a_manifest(tmp_path, capsys):
    from speechkd.cli import main

    assert main(["eval", "systems", "--systems", str(tmp_path / "none.tsv"), "--data-dir", str(tmp_path),
                 "--out", str(tmp_path / "eval")]) == 2
    assert "none.tsv' does not exist" in capsys.readouterr().err and not (tmp_path / "eval").exists()
