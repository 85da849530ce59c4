"""Kaldi data dirs: validate (every bad input named by file, utterance and field), fix
(drops exactly the bad utterances, says why, leaves a valid dir), C sorting, pipes, split, CLI."""

from __future__ import annotations

import logging
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import write_wav
from speechkd.cli import main as cli
from speechkd.data.kaldi import read_datadir, read_lines, sort_key, write_datadir, write_table
from speechkd.data.split import split_by_ratio, split_datadir, subset_datadir
from speechkd.data.validate import fix_datadir, unsafe_id_reason, validate_datadir
from speechkd.errors import DataDirError

FILES = ("wav.scp", "text", "utt2spk", "spk2utt")


def _read(d: Path, name: str) -> list[str]:
    return (d / name).read_text().splitlines()


def _write(d: Path, name: str, lines: list[str]) -> None:
    (d / name).write_text("".join(f"{line}\n" for line in lines))


def _sorted(lines: list[str]) -> list[str]:
    return sorted(lines, key=lambda line: sort_key(line.split()[0]))


def _wav_of(d: Path, utt: str) -> Path:
    return Path(dict(line.split(maxsplit=1) for line in _read(d, "wav.scp"))[utt])


def _add_utt(d: Path, utt: str, spk: str = "spkA") -> None:
    """Add a complete, well-formed utterance (good audio) in C order, spk2utt regenerated."""
    wav = write_wav(d.parent / "wav" / "extra.wav")
    for name, value in (("wav.scp", str(wav)), ("text", "some words"), ("utt2spk", spk)):
        _write(d, name, _sorted(_read(d, name) + [f"{utt} {value}"]))
    spk2utt: dict[str, list[str]] = {}
    for line in _read(d, "utt2spk"):
        u, s = line.split()
        spk2utt.setdefault(s, []).append(u)
    _write(d, "spk2utt", [f"{s} {' '.join(us)}" for s, us in sorted(spk2utt.items())])


def _replace_line(d: Path, name: str, utt: str, new: str | None) -> None:
    lines = [line for line in _read(d, name) if line.split()[0] != utt or new is not None]
    _write(d, name, [new if line.split()[0] == utt else line for line in lines])


# (id, mutation, sample_rate, error kind, file, utt, field, utterances fix must drop)
BAD_INPUTS = [
    ("corrupt-wav", lambda d: _wav_of(d, "spkA_001").write_bytes(b"RIFF\x00\x01garbage" * 10), None,
     "unreadable-audio", "wav.scp", "spkA_001", "audio", {"spkA_001"}),
    ("empty-wav", lambda d: write_wav(_wav_of(d, "spkA_002"), seconds=0), None,
     "empty-audio", "wav.scp", "spkA_002", "audio", {"spkA_002"}),
    ("stereo-wav", lambda d: write_wav(_wav_of(d, "spkB_003"), channels=2), None,
     "multichannel-audio", "wav.scp", "spkB_003", "audio", {"spkB_003"}),
    ("wrong-rate", lambda d: write_wav(_wav_of(d, "spkB_004"), sr=8000), 16000,
     "sample-rate", "wav.scp", "spkB_004", "audio", {"spkB_004"}),
    ("slash-id", lambda d: _add_utt(d, "spkA/evil"), None,
     "unsafe-id", "utt2spk", "spkA/evil", "id", {"spkA/evil"}),
    ("dotdot-id", lambda d: _add_utt(d, "spkA..up"), None,
     "unsafe-id", "utt2spk", "spkA..up", "id", {"spkA..up"}),
    ("duplicate-id", lambda d: _write(d, "text", _read(d, "text")[:1] + ["spkA_000 other words"]
                                      + _read(d, "text")[1:]), None,
     "duplicate-id", "text", "spkA_000", "id", set()),
    ("missing-audio", lambda d: _wav_of(d, "spkB_005").unlink(), None,
     "missing-audio", "wav.scp", "spkB_005", "audio", {"spkB_005"}),
    ("empty-text", lambda d: _replace_line(d, "text", "spkA_001", "spkA_001"), None,
     "empty-text", "text", "spkA_001", "text", {"spkA_001"}),
    ("unsorted", lambda d: _write(d, "utt2spk", _read(d, "utt2spk")[::-1]), None,
     "unsorted", "utt2spk", "spkB_004", "id", set()),
    ("utt-missing-from-utt2spk", lambda d: _replace_line(d, "utt2spk", "spkB_003", None), None,
     "missing-id", "utt2spk", "spkB_003", "id", {"spkB_003"}),
    ("utt-only-in-text", lambda d: _write(d, "text", _read(d, "text") + ["spkB_999 stray"]), None,
     "missing-id", "utt2spk", "spkB_999", "id", {"spkB_999"}),
    ("wav-scp-key-without-value", lambda d: _replace_line(d, "wav.scp", "spkA_002", "spkA_002"), None,
     "empty-value", "wav.scp", "spkA_002", "value", {"spkA_002"}),
    ("stale-spk2utt", lambda d: _write(d, "spk2utt", ["spkA spkA_000", "spkB spkB_003 spkB_004 spkB_005"]),
     None, "spk2utt-mismatch", "spk2utt", None, "speaker", set()),
]


def test_tiny_datadir_is_valid(tiny_datadir):
    rep = validate_datadir(tiny_datadir, sample_rate=16000)
    assert rep.ok and not rep.warnings, rep.format()
    assert (rep.num_utts, rep.num_speakers) == (6, 2)
    assert rep.minutes == pytest.approx(6 * 0.25 / 60)


@pytest.mark.parametrize("case", BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_is_reported_and_fixed(tiny_datadir, caplog, case):
    _, mutate, sr, kind, file, utt, field, drop = case
    d = tiny_datadir
    mutate(d)
    rep = validate_datadir(d, sample_rate=sr)
    assert not rep.ok
    hits = [e for e in rep.errors if e.kind == kind and e.utt == utt]
    assert hits, rep.format()
    issue = hits[0]
    assert Path(issue.file).name == file and issue.field == field
    assert file in str(issue) and f"'{field}'" in str(issue) and (utt is None or f"'{utt}'" in str(issue))
    assert set(rep.unusable) == drop, rep.format()

    with caplog.at_level(logging.INFO, logger="speechkd"):
        res = fix_datadir(d, sample_rate=sr)
    assert set(res.dropped) == drop
    messages = [r.getMessage() for r in caplog.records]
    for u in drop:
        assert any(f"dropped utterance '{u}'" in m for m in messages), messages
    if utt is not None:
        assert any(utt in m for m in messages)
    after = validate_datadir(d, sample_rate=sr)
    assert after.ok and after.num_utts == rep.num_utts - len(drop), after.format()
    assert (d / ".backup" / "text").exists() and (d / ".backup" / "utt2spk").exists()
    if kind == "duplicate-id":  # the first of the duplicates is kept
        assert "spkA_000 sentence number 0" in _read(d, "text")


def test_fix_logs_reason_and_summary(tiny_datadir, caplog):
    _wav_of(tiny_datadir, "spkB_005").unlink()
    with caplog.at_level(logging.INFO, logger="speechkd"):
        fix_datadir(tiny_datadir)
    text = caplog.text
    assert "dropped utterance 'spkB_005'" in text and "does not exist" in text
    assert "kept 5 utterances, dropped 1 (missing-audio 1)" in text


def test_fix_to_out_leaves_source_and_filters_extra_files(tiny_datadir, tmp_path):
    _replace_line(tiny_datadir, "text", "spkA_000", "spkA_000")
    _write(tiny_datadir, "utt2dur", [f"{line.split()[0]} 0.25" for line in _read(tiny_datadir, "utt2spk")])
    before = {n: (tiny_datadir / n).read_text() for n in FILES}
    res = fix_datadir(tiny_datadir, out=tmp_path / "fixed")
    assert res.backup is None and not (tiny_datadir / ".backup").exists()
    assert before == {n: (tiny_datadir / n).read_text() for n in FILES}
    assert validate_datadir(tmp_path / "fixed").ok
    assert [line.split()[0] for line in _read(tmp_path / "fixed", "utt2dur")] == \
        [line.split()[0] for line in _read(tmp_path / "fixed", "utt2spk")]
    assert "spkA_000" not in (tmp_path / "fixed" / "utt2dur").read_text()


def test_backup_never_overwrites_an_earlier_original(tiny_datadir):
    original = (tiny_datadir / "text").read_text()
    _write(tiny_datadir, "text", _read(tiny_datadir, "text")[::-1])
    unsorted = (tiny_datadir / "text").read_text()
    fix_datadir(tiny_datadir)
    assert (tiny_datadir / ".backup" / "text").read_text() == unsorted
    assert (tiny_datadir / "text").read_text() == original
    _replace_line(tiny_datadir, "text", "spkA_000", "spkA_000")
    second = (tiny_datadir / "text").read_text()
    fix_datadir(tiny_datadir)
    fixed = (tiny_datadir / "text").read_text()
    fix_datadir(tiny_datadir)
    fix_datadir(tiny_datadir)  # nothing new to back up
    assert (tiny_datadir / ".backup" / "text").read_text() == unsorted
    assert (tiny_datadir / ".backup" / "text.1").read_text() == second
    assert (tiny_datadir / ".backup" / "text.2").read_text() == fixed
    assert not (tiny_datadir / ".backup" / "text.3").exists()


def test_fix_refuses_dir_missing_a_required_file(tiny_datadir):
    (tiny_datadir / "utt2spk").unlink()
    assert any(e.kind == "missing-file" for e in validate_datadir(tiny_datadir).errors)
    with pytest.raises(DataDirError, match="utt2spk"):
        fix_datadir(tiny_datadir)


def test_lenient_read_skips_line_without_value(tiny_datadir):
    _replace_line(tiny_datadir, "wav.scp", "spkA_002", "spkA_002")
    with pytest.raises(DataDirError, match="line 3 has a key but no value"):
        read_datadir(tiny_datadir)
    assert "spkA_002" not in read_datadir(tiny_datadir, lenient=True).wav_scp


def test_speaker_prefix_is_a_warning_only(tiny_datadir):
    for name in ("wav.scp", "text", "utt2spk"):
        _write(tiny_datadir, name, [line.replace("spkA_000 ", "early_000 ") for line in _read(tiny_datadir, name)])
    (tiny_datadir / "spk2utt").unlink()
    rep = validate_datadir(tiny_datadir)
    assert rep.ok, rep.format()
    assert {w.kind for w in rep.warnings} == {"speaker-prefix", "no-spk2utt"}
    assert any(w.utt == "early_000" and w.field == "speaker" for w in rep.warnings)


@pytest.mark.parametrize("key,bad", [("spk_001", False), ("a-b.c_1", False), ("a/b", True), ("a..b", True),
                                     ("-x", True), (".x", True), ("a\x07b", True), ("a\u00a0b", True)])
def test_unsafe_ids(key, bad):
    assert (unsafe_id_reason(key) is not None) == bad


def test_segments_bounds_and_unused_recording(tmp_path):
    d = tmp_path / "data"
    d.mkdir()
    rec = write_wav(tmp_path / "rec1.wav", seconds=1.0)
    other = write_wav(tmp_path / "rec2.wav", seconds=0.5)
    _write(d, "wav.scp", [f"rec1 {rec}", f"rec2 {other}"])
    _write(d, "segments", ["s_a rec1 0.00 0.40", "s_b rec1 0.40 0.80", "s_c rec1 0.90 1.50"])
    _write(d, "text", ["s_a one", "s_b two", "s_c three"])
    _write(d, "utt2spk", ["s_a s", "s_b s", "s_c s"])
    _write(d, "spk2utt", ["s s_a s_b s_c"])
    rep = validate_datadir(d)
    assert [(e.kind, e.utt, e.field) for e in rep.errors] == [("bad-segment", "s_c", "segment")]
    assert any(w.kind == "unused-recording" and w.utt == "rec2" for w in rep.warnings)
    assert rep.minutes == pytest.approx(0.8 / 60)
    res = fix_datadir(d)
    assert set(res.dropped) == {"s_c"}
    dd = read_datadir(d)
    assert set(dd.wav_scp) == {"rec1"} and set(dd.segments) == {"s_a", "s_b"}
    assert validate_datadir(d).ok


def test_round_trip_is_byte_identical(tiny_datadir, tmp_path):
    dd = read_datadir(tiny_datadir)
    write_datadir(tmp_path / "copy", dd)
    for name in FILES:
        assert (tmp_path / "copy" / name).read_bytes() == (tiny_datadir / name).read_bytes()
    again = read_datadir(tmp_path / "copy")
    assert (again.wav_scp, again.text, again.utt2spk) == (dd.wav_scp, dd.text, dd.utt2spk)


def test_sort_matches_lc_all_c_sort(tmp_path):
    keys = ["b", "B", "a_1", "a-1", "a1", "a.1", "A", "_x", "Z9", "z", "é", "ä", "a", "ab", "a~", "10", "9", "~"]
    rng = random.Random(0)
    alphabet = "aAbB019_-.~éü"
    keys += ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 6))) for _ in range(300)]
    table = {k: f"v {i}" for i, k in enumerate(dict.fromkeys(keys))}
    write_table(tmp_path / "t", table)
    ours = (tmp_path / "t").read_bytes()
    theirs = subprocess.run(["sort"], input=ours, capture_output=True, check=True,
                            env={"LC_ALL": "C", "PATH": "/usr/bin:/bin"}).stdout
    assert ours == theirs
    assert [k for _, k, _ in read_lines(tmp_path / "t")] == sorted(table, key=sort_key)


def test_pipe_entries(tiny_datadir):
    lines = _read(tiny_datadir, "wav.scp")
    piped = [f"{u} cat {w} |" if i % 2 else f"{u} sox {w} -t wav - |"
             for i, (u, w) in enumerate(line.split(maxsplit=1) for line in lines)]
    if shutil.which("sox") is None:
        piped = [line.replace(" sox ", " cat ").replace(" -t wav - |", " |") for line in piped]
    _write(tiny_datadir, "wav.scp", piped)
    dd = read_datadir(tiny_datadir)
    assert dd.wav_scp["spkA_001"].startswith("cat ") and dd.wav_scp["spkA_001"].endswith(".wav |")
    rep = validate_datadir(tiny_datadir, sample_rate=16000, read_pipes=True)
    assert rep.ok, rep.format()
    assert rep.minutes == pytest.approx(6 * 0.25 / 60)
    _replace_line(tiny_datadir, "wav.scp", "spkB_003", "spkB_003 cat /nonexistent/x.wav |")
    rep = validate_datadir(tiny_datadir, read_pipes=True)
    assert [(e.kind, e.utt) for e in rep.errors] == [("unreadable-audio", "spkB_003")]
    assert "pipe command failed" in rep.errors[0].message


def test_split_covers_every_utt_once(tiny_datadir):
    dirs = split_datadir(tiny_datadir, 4)
    assert dirs == [str(tiny_datadir / "split4" / str(i)) for i in range(1, 5)]
    parts = [read_datadir(p).utts for p in dirs]
    assert [len(p) for p in parts] == [2, 2, 1, 1]
    assert [u for p in parts for u in p] == read_datadir(tiny_datadir).utts  # contiguous, in order
    for p in dirs:
        assert validate_datadir(p).ok
    with pytest.raises(DataDirError, match="into 7 parts"):
        split_datadir(tiny_datadir, 7)


def test_split_by_ratio_and_subset(tiny_datadir, tmp_path):
    out = split_by_ratio(tiny_datadir, {"train": 0.5, "dev": 0.25, "test": 0.25}, tmp_path / "parts")
    parts = {k: read_datadir(v).utts for k, v in out.items()}
    assert {k: len(v) for k, v in parts.items()} == {"train": 3, "dev": 2, "test": 1}
    assert sorted(u for p in parts.values() for u in p) == sorted(read_datadir(tiny_datadir).utts)
    assert subset_datadir(tiny_datadir, tmp_path / "first", first=2) == 2
    assert read_datadir(tmp_path / "first").utts == ["spkA_000", "spkA_001"]
    assert subset_datadir(tiny_datadir, tmp_path / "last", last=1) == 1
    assert read_datadir(tmp_path / "last").utts == ["spkB_005"]
    assert subset_datadir(tiny_datadir, tmp_path / "list", utts=["spkB_004", "nope"]) == 1
    assert read_datadir(tmp_path / "list").spk2utt == {"spkB": ["spkB_004"]}


def test_split_refuses_invalid_dir(tiny_datadir):
    _replace_line(tiny_datadir, "utt2spk", "spkB_003", None)
    with pytest.raises(DataDirError, match="spkB_003"):
        split_datadir(tiny_datadir, 2)


def test_cli_validate_fix_info(tiny_datadir, capsys):
    assert cli(["data", "validate", str(tiny_datadir), "--sample-rate", "16000"]) == 0
    assert "OK" in capsys.readouterr().out
    _wav_of(tiny_datadir, "spkB_005").unlink()
    assert cli(["data", "validate", str(tiny_datadir)]) == 1
    out = capsys.readouterr().out
    assert "INVALID" in out and "spkB_005" in out and "missing-audio 1" in out
    assert cli(["data", "info", str(tiny_datadir)]) == 0
    out = capsys.readouterr().out
    assert "utterances: 6" in out and "speakers: 2" in out and "problems: 1 errors" in out
    assert cli(["data", "fix", str(tiny_datadir)]) == 0
    assert "dropped 1" in capsys.readouterr().out
    assert cli(["data", "validate", str(tiny_datadir)]) == 0
    assert cli(["data", "info", str(tiny_datadir)]) == 0
    minutes = float(capsys.readouterr().out.split("minutes:")[1].split()[0])
    assert minutes == pytest.approx(5 * 0.25 / 60, abs=0.005)


def test_cli_lists_first_20_then_counts(tiny_datadir, capsys):
    _write(tiny_datadir, "text", _sorted(_read(tiny_datadir, "text") + [f"spkA_9{i:02d} x" for i in range(30)]))
    assert cli(["data", "validate", str(tiny_datadir), "--no-audio"]) == 1
    out = capsys.readouterr().out
    assert "... and 40 more" in out and "missing-id 60" in out  # each stray utt lacks utt2spk and wav.scp


def test_cli_split_subset_and_user_errors(tiny_datadir, tmp_path, capsys):
    assert cli(["data", "split", str(tiny_datadir), "--num", "3"]) == 0
    assert all((tiny_datadir / "split3" / str(i) / "utt2spk").exists() for i in (1, 2, 3))
    assert cli(["data", "split", str(tiny_datadir), "--ratio", "a=2", "b=1", "--out", str(tmp_path / "r")]) == 0
    assert len(read_datadir(tmp_path / "r" / "a").utts) == 4
    (tmp_path / "list").write_text("spkA_001 extra fields\nspkB_005\n")
    assert cli(["data", "subset", str(tiny_datadir), str(tmp_path / "s"), "--utt-list", str(tmp_path / "list")]) == 0
    assert read_datadir(tmp_path / "s").utts == ["spkA_001", "spkB_005"]
    capsys.readouterr()
    assert cli(["data", "validate", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert cli(["data", "split", str(tiny_datadir), "--num", "9"]) == 2
    assert cli(["data", "subset", str(tiny_datadir), str(tmp_path / "t"), "--first", "0"]) == 2


def test_resample_writes_every_recording_at_the_new_rate_and_resumes(tiny_datadir, tmp_path, capsys):
    """`speechkd data resample`: the explicit step feature extraction asks for. Every recording at the new
    rate and the same length in seconds, the sine still at its frequency, the other files copied, the
    frame counts of old features dropped; a rerun keeps what is done; another data dir is refused."""
    import numpy as np
    import soundfile as sf

    (tiny_datadir / "utt2dur").write_text("".join(f"{u} 0.25\n" for u in read_datadir(tiny_datadir).utts))
    (tiny_datadir / "utt2num_frames").write_text("spkA_000 16\n")
    out = tmp_path / "data22"
    assert cli(["data", "resample", str(tiny_datadir), str(out), "--rate", "22050", "--nj", "2"]) == 0
    assert "6 recordings at 22050 Hz (6 resampled now, 0 kept)" in capsys.readouterr().out
    dd = read_datadir(out)
    assert dd.text == read_datadir(tiny_datadir).text and dd.utt2spk == read_datadir(tiny_datadir).utt2spk
    assert (out / "utt2dur").read_text() == (tiny_datadir / "utt2dur").read_text()
    assert not (out / "utt2num_frames").exists()
    for utt, entry in dd.wav_scp.items():
        assert Path(entry).parent == out / "wav"
        y, sr = sf.read(entry)
        assert sr == 22050 and len(y) == int(np.ceil(0.25 * 22050))
    y, _ = sf.read(dd.wav_scp["spkA_000"])  # a 220 Hz sine (conftest.write_wav, seed 0)
    assert abs(np.argmax(np.abs(np.fft.rfft(y))) * 22050 / len(y) - 220) < 8
    assert validate_datadir(out, sample_rate=22050).ok
    # a rerun (a killed one, say) keeps the finished wavs
    (out / "wav" / "spkB_005.wav").unlink()
    assert cli(["data", "resample", str(tiny_datadir), str(out), "--rate", "22050"]) == 0
    assert "(1 resampled now, 5 kept)" in capsys.readouterr().out
    # another data dir at OUT, or OUT = DIR, is refused without writing a wav into it
    assert cli(["data", "resample", str(out), str(tiny_datadir), "--rate", "24000"]) == 2
    assert "another data dir" in capsys.readouterr().err
    assert cli(["data", "resample", str(out), str(out), "--rate", "24000"]) == 2
    assert "the output is the input" in capsys.readouterr().err
    assert sf.info(dd.wav_scp["spkA_000"]).samplerate == 22050
    # --overwrite from another source with the same recording ids: every wav made anew, none kept
    other = tmp_path / "other"
    shutil.copytree(tiny_datadir, other)
    (other / "text").write_text((other / "text").read_text().replace("sentence", "phrase"))
    assert cli(["data", "resample", str(other), str(out), "--rate", "22050"]) == 2
    assert "other settings" in capsys.readouterr().err
    assert cli(["data", "resample", str(other), str(out), "--rate", "22050", "--overwrite"]) == 0
    assert "(6 resampled now, 0 kept)" in capsys.readouterr().out
    assert read_datadir(out).text == read_datadir(other).text
