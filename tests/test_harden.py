"""Untrusted input by class: ids that would escape an output dir, outputs that would overwrite
something, audio that only reading the samples shows broken, pipes that validating must not run,
a killed parallel runner, a malformed HTTP request, HTML in an answers file."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import write_wav
from speechkd.cli import main as cli
from speechkd.errors import SpeechkdError
from speechkd.utils.outputs import claim_output_dir
from speechkd.utils.paths import id_problem, safe_child

ROOT = Path(__file__).resolve().parents[1]
ESCAPING = ["../x", "../../x", "/abs/x", "a/b", "a\\b", "..", ".", "", "a\x00b", "a\nb", "a\tb", "a b", ".hidden",
            "a\x1b[2Jb", "a\u2028b", "x" * 300]


# ---- ids never become paths outside an output dir ----------------------------------------------
@pytest.mark.parametrize("utt", ESCAPING)
def test_safe_child_refuses_ids_that_leave_the_dir(tmp_path, utt):
    with pytest.raises(SpeechkdError) as e:
        safe_child(tmp_path, utt, ".wav", source="data/wav.scp")
    assert repr(utt)[:40] in str(e.value) and "data/wav.scp" in str(e.value)
    assert id_problem(utt)


@pytest.mark.parametrize("utt", ["spk1_utt0001", "a-b.c_1", "Ünïcode_1", "x" * 150])
def test_safe_child_keeps_plain_ids_inside(tmp_path, utt):
    p = safe_child(tmp_path, utt, ".wav")
    assert os.path.dirname(p) == str(tmp_path) and p.endswith(f"{utt}.wav")


def _evil_datadir(tmp_path: Path, utt: str) -> Path:
    d = tmp_path / "data"
    d.mkdir()
    wav = write_wav(tmp_path / "wav" / "a.wav", seconds=0.3)
    (d / "wav.scp").write_text(f"{utt} {wav}\n")
    (d / "text").write_text(f"{utt} hello\n")
    (d / "utt2spk").write_text(f"{utt} spk\n")
    return d


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.mark.parametrize("utt", ["../../escaped", "/ESCAPED_ABS/x", "a\\..\\b"])
def test_enhance_and_world_vocode_refuse_escaping_ids(tmp_path, utt, capsys):
    work = tmp_path / "w"
    work.mkdir()
    data = _evil_datadir(work, utt)
    out = work / "deep" / "out"
    # an escaped file of an earlier (unguarded) run must not count as "already there"
    if utt.startswith("../"):
        (out / f"{utt}.wav").parent.mkdir(parents=True, exist_ok=True)
        write_wav(out / f"{utt}.wav")
    before = _files(tmp_path)
    assert cli(["enhance", "--data-dir", str(data), "--out-dir", str(out), "--model", "builtin:identity"]) == 2
    err = capsys.readouterr().err
    assert "cannot name an output file" in err and "wav.scp" in err and "Traceback" not in err
    assert cli(["vocode", "--vocoder", "world", "--data-dir", str(data), "--out", str(out / "w")]) == 2
    assert "cannot name an output file" in capsys.readouterr().err
    assert _files(tmp_path) - before <= {"w/deep", "w/deep/out", "w/deep/out/w"} | {
        f"w/deep/out/{n}" for n in (".speechkd_settings.json",)}
    assert not Path("/ESCAPED_ABS").exists()


def test_no_writer_joins_an_id_into_a_path_by_hand():
    """Every path built from an utterance id goes through safe_child (a new writer too)."""
    pattern = re.compile(r"""join\([^)]*f["']\{[\w.\[\]"']*\}\.(wav|npz|npy)["']""")
    hits = [f"{p.relative_to(ROOT)}:{n}: {line.strip()}" for p in (ROOT / "speechkd").rglob("*.py")
            for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if pattern.search(line)]
    assert not hits, hits


def test_vocode_refuses_a_hand_edited_feats_scp_key(tmp_path, capsys):
    from speechkd.config import save_config
    from speechkd.features.config import FeatureConfig

    dump = tmp_path / "dump"
    (dump / "data").mkdir(parents=True)
    save_config(FeatureConfig(), dump / "feature_config.yaml")
    np.savez(dump / "data" / "u1.npz", mel=np.zeros((10, FeatureConfig().n_mels), np.float32))
    (dump / "feats.scp").write_text("../../escaped data/u1.npz 10\n")
    assert cli(["vocode", "--feats", str(dump), "--out", str(tmp_path / "o"), "n_iter=1"]) == 2
    err = capsys.readouterr().err
    assert "'../../escaped'" in err and "feats.scp" in err
    assert not list(tmp_path.rglob("escaped*"))


def test_synth_refuses_list_ids_that_are_paths(tmp_path, capsys):
    (tmp_path / "list").write_text("ok1|hello\n../../evil|hello\n")
    (tmp_path / "model").mkdir()
    assert cli(["synth", "--model", str(tmp_path / "model"), "--list", str(tmp_path / "list"),
                "-d", str(tmp_path / "out")]) == 2
    assert "line 2: '../../evil'" in capsys.readouterr().err


def test_data_validate_flags_path_like_ids(tmp_path, capsys):
    data = _evil_datadir(tmp_path, "a\\b")
    assert cli(["data", "validate", str(data), "--no-audio"]) == 1
    assert "unsafe-id" in capsys.readouterr().out


# ---- data validate: pipes only when asked; samples and truncation -------------------------------
def test_validate_runs_no_pipe_unless_asked(tmp_path, capsys):
    wav = write_wav(tmp_path / "a.wav")
    marker = tmp_path / "PIPE_RAN"
    data = tmp_path / "data"
    data.mkdir()
    (data / "wav.scp").write_text(f"spk_1 touch {marker}; cat {wav} |\n")
    (data / "text").write_text("spk_1 hi\n")
    (data / "utt2spk").write_text("spk_1 spk\n")
    assert cli(["data", "validate", str(data)]) == 0
    out = capsys.readouterr().out
    assert not marker.exists() and "--read-pipes" in out
    assert cli(["data", "info", str(data)]) == 0 and not marker.exists()
    assert cli(["data", "validate", str(data), "--read-pipes"]) == 0 and marker.exists()


def test_validate_reports_nonfinite_and_truncated_audio(tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    x = (0.1 * np.random.default_rng(0).standard_normal(8000)).astype(np.float32)
    for name, bad in (("nan", np.nan), ("inf", np.inf)):
        y = x.copy()
        y[123] = bad
        sf.write(tmp_path / f"{name}.wav", y, 16000, subtype="FLOAT")
    sf.write(tmp_path / "cut.wav", x, 16000, subtype="PCM_16")
    raw = (tmp_path / "cut.wav").read_bytes()
    (tmp_path / "cut.wav").write_bytes(raw[: len(raw) * 2 // 3])
    sf.write(tmp_path / "good.wav", x, 16000, subtype="FLOAT")
    utts = {"spk_cut": "cut", "spk_good": "good", "spk_inf": "inf", "spk_nan": "nan"}
    (data / "wav.scp").write_text("".join(f"{u} {tmp_path / n}.wav\n" for u, n in utts.items()))
    (data / "text").write_text("".join(f"{u} hi\n" for u in utts))
    (data / "utt2spk").write_text("".join(f"{u} spk\n" for u in utts))
    assert cli(["data", "validate", str(data)]) == 1
    out = capsys.readouterr().out
    assert "nonfinite-audio 2" in out and "truncated-audio 1" in out and "spk_good" not in out


# ---- nothing overwritten silently --------------------------------------------------------------
def test_enhance_refuses_output_equal_to_input(tmp_path, capsys):
    wav = write_wav(tmp_path / "x.wav")
    before = wav.read_bytes()
    os.link(wav, tmp_path / "hard.wav")
    for out in (wav, tmp_path / "." / "x.wav", tmp_path / "hard.wav"):
        assert cli(["enhance", "-i", str(wav), "-o", str(out), "--model", "builtin:identity"]) == 2
        assert "the output is the input" in capsys.readouterr().err
    assert wav.read_bytes() == before


def test_enhance_batch_rerun_with_other_settings_is_refused(tmp_path, tiny_datadir, capsys):
    out = tmp_path / "enh"
    assert cli(["enhance", "--data-dir", str(tiny_datadir), "--out-dir", str(out), "--model", "builtin:identity"]) == 0
    first = {p.name: p.read_bytes() for p in out.glob("*.wav")}
    assert cli(["enhance", "--data-dir", str(tiny_datadir), "--out-dir", str(out), "--model", "builtin:identity"]) == 0
    assert cli(["enhance", "--data-dir", str(tiny_datadir), "--out-dir", str(out),
                "--model", "builtin:highpass80"]) == 2
    err = capsys.readouterr().err
    assert "other settings" in err and "builtin:identity" in err and "--overwrite" in err
    assert {p.name: p.read_bytes() for p in out.glob("*.wav")} == first
    assert cli(["enhance", "--data-dir", str(tiny_datadir), "--out-dir", str(out),
                "--model", "builtin:highpass80", "--overwrite"]) == 0
    assert {p.name: p.read_bytes() for p in (out / ".backup" / "1").glob("*.wav")} == first
    # a dir that is not enhance output at all
    assert cli(["enhance", "--data-dir", str(tiny_datadir), "--out-dir", str(tiny_datadir),
                "--model", "builtin:identity"]) == 2


def test_data_subset_split_fix_never_overwrite_silently(tmp_path, tiny_datadir, capsys):
    d = str(tiny_datadir)
    assert cli(["data", "subset", d, d, "--first", "2"]) == 2
    assert "the output is the input" in capsys.readouterr().err
    assert len((tiny_datadir / "utt2spk").read_text().splitlines()) == 6
    other = tmp_path / "other"
    assert cli(["data", "subset", d, str(other), "--last", "3"]) == 0
    assert cli(["data", "subset", d, str(other), "--last", "3"]) == 0  # the same content again: fine
    old = (other / "utt2spk").read_text()
    for args in (["subset", d, str(other), "--first", "2"], ["split", d, "--num", "1", "--out", str(tmp_path)],
                 ["fix", d, "--out", str(other)]):
        if args[0] == "split":
            (tmp_path / "1").mkdir()
            (tmp_path / "1" / "utt2spk").write_text(old)
        assert cli(["data", *args]) == 2, args
        assert "another data dir" in capsys.readouterr().err
    assert (other / "utt2spk").read_text() == old
    assert cli(["data", "subset", d, str(other), "--first", "2", "--overwrite"]) == 0
    assert (other / ".backup" / "utt2spk").read_text() == old
    assert len((other / "utt2spk").read_text().splitlines()) == 2


def test_se_data_and_corpus_refuse_other_settings(tmp_path, capsys):
    from se_fixtures import make_corpora

    speech, noise = make_corpora(tmp_path, n_train=2, n_dev=1, n_test=1)
    out = tmp_path / "se"
    assert cli(["se-data", "--speech", str(speech), "--noise", str(noise), "--out", str(out), "--seed", "1"]) == 0
    wavs = {p: p.read_bytes() for p in out.rglob("*.wav")}
    assert cli(["se-data", "--speech", str(speech), "--noise", str(noise), "--out", str(out), "--seed", "9"]) == 2
    err = capsys.readouterr().err
    assert "seed: 1 -> 9" in err and "--overwrite" in err
    assert {p: p.read_bytes() for p in out.rglob("*.wav")} == wavs
    # corpus: a non-empty dir of other files, then a corpus dir of other settings
    assert cli(["corpus", "mini_en", "--out", str(speech / "train")]) == 2
    assert "is not empty" in capsys.readouterr().err
    claim_output_dir(tmp_path / "c", {"corpus": "noise", "num_utts": None, "seed": 1, "num_dev": None,
                                      "num_test": None}, verb="corpus")
    (tmp_path / "c" / "corpus.json").write_text("{}")  # what that run wrote
    assert cli(["corpus", "mini_en", "--out", str(tmp_path / "c"), "--seed", "1"]) == 2
    assert "corpus: 'noise' -> 'mini_en'" in capsys.readouterr().err


# ---- run.pl: a killed parent leaves no workers -------------------------------------------------
def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_run_pl_kills_its_workers_with_it(tmp_path, sig):
    proc = subprocess.Popen([str(ROOT / "recipes" / "utils" / "run.pl"), "JOB=1:2", str(tmp_path / "log.JOB"),
                             f"echo $$ > {tmp_path}/pid.JOB; exec sleep 60"], start_new_session=True,
                            # a run under nohup or in a background job inherits SIGHUP/SIGINT ignored
                            preexec_fn=lambda: [signal.signal(s, signal.SIG_DFL) for s in (signal.SIGINT,
                                                                                          signal.SIGHUP)])
    pidfiles = [tmp_path / "pid.1", tmp_path / "pid.2"]
    deadline = time.time() + 10
    while not all(p.exists() and p.read_text().strip() for p in pidfiles) and time.time() < deadline:
        time.sleep(0.05)
    workers = [int(p.read_text()) for p in pidfiles]
    assert all(_alive(w) for w in workers)
    proc.send_signal(sig)
    proc.wait(timeout=10)
    deadline = time.time() + 5
    while any(_alive(w) for w in workers) and time.time() < deadline:
        time.sleep(0.05)
    leftover = [w for w in workers if _alive(w)]
    for w in leftover:
        os.kill(w, signal.SIGKILL)
    assert not leftover and proc.returncode != 0


# ---- eval tts: stereo refused -----------------------------------------------------------------
def test_eval_tts_refuses_stereo(tmp_path, tiny_datadir, capsys):
    syn = tmp_path / "syn"
    for u in (tiny_datadir / "utt2spk").read_text().split()[::2]:
        write_wav(syn / f"{u}.wav", seconds=0.6, channels=2)
    assert cli(["eval", "tts", "--data-dir", str(tiny_datadir), "--wav-dir", str(syn), "--out", str(tmp_path / "o"),
                "--no-asr", "--num-utts", "1"]) == 2
    err = capsys.readouterr().err
    assert "2 channels" in err and len(err.strip().splitlines()) == 1


# ---- listening server and report --------------------------------------------------------------
@pytest.fixture
def server(tmp_path: Path):
    from speechkd.listen.serve import make_server

    site = tmp_path / "site"
    site.mkdir()
    (site / "site.json").write_text(json.dumps({"site_id": "abc"}))
    (site / "index.html").write_text("<!DOCTYPE html><title>x</title>")
    (tmp_path / "secret.txt").write_text("secret")
    srv = make_server(site, port=0)
    errors = []
    srv.handle_error = lambda *a: errors.append(a)  # an unhandled exception in a handler lands here
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv.server_address[1], errors
    srv.shutdown()
    srv.server_close()


def _raw(port: int, request: bytes) -> int:
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(request)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/") else -1


@pytest.mark.parametrize("path", ["/%00", "/index.html%00.x", "/../secret.txt", "/%2e%2e/secret.txt",
                                  "/a/%2E%2E/%2e%2e/secret.txt", "/..%5csecret.txt", "/%ff%fe", "/%0d%0aX: y",
                                  "/answers.sqlit%65", "/" + "a" * 5000])
@pytest.mark.parametrize("method", ["GET", "HEAD", "POST"])
def test_server_malformed_paths_get_4xx(server, path, method):
    port, errors = server
    status = _raw(port, f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                  .encode("latin-1"))
    assert 400 <= status < 500, status
    assert not errors


@pytest.mark.parametrize("body", [b"[" * 200_000 + b"]" * 200_000, b'{"site_id": "abc", "rows": ' + b"[" * 100_000,
                                  b"not json", b"\xff\xfe\x00", b'{"site_id": "abc", "rows": [1, "x", null]}',
                                  b'{"site_id": "abc", "rows": [{"score": {"a": []}}]}'])
def test_server_malformed_bodies_get_4xx(server, body):
    port, errors = server
    head = f"POST /api/answers HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    assert 400 <= _raw(port, head.encode() + body) < 500
    huge = "POST /api/answers HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\nConnection: close\r\n\r\n"
    assert _raw(port, huge.encode()) == 413
    assert not errors


def test_aggregate_escapes_html_and_markdown(tmp_path, capsys):
    rows = []
    for listener in ("<script>alert(1)</script>", "[x](javascript:alert(1))", "L|3"):
        for item, system, score in (("u1", "<img src=x onerror=alert(1)>", 4), ("u1", "sysB", 2),
                                    ("u2", "<img src=x onerror=alert(1)>", 5), ("u2", "sysB", 3)):
            rows.append({"listener": listener, "test": "mos", "item": item, "system": system, "other": "",
                         "score": score, "plays": 1, "listening_time_s": 1.0, "timestamp": "2024-01-01T00:00:00Z",
                         "kind": "normal", "expected": "", "position": 1})
    (tmp_path / "a.json").write_text(json.dumps(rows))
    assert cli(["listen", "aggregate", "--results", str(tmp_path / "a.json"), "--out", str(tmp_path / "r")]) == 0
    md = (tmp_path / "r" / "report.md").read_text()
    assert "<script" not in md and "<img" not in md
    assert not re.search(r"(?<!\\)\]\(javascript", md)  # a link only when the ] is not escaped
    assert "&lt;script&gt;" in md and "L\\|3" in md


def test_atomic_writes_get_the_mode_open_would_give(tmp_path):
    """mkstemp makes 0600 files: results, wavs and pages written through it would be unreadable to
    anyone else on a shared machine (a listening server run as another user, a colleague)."""
    from speechkd.utils import io

    io.atomic_write_text(tmp_path / "results.md", "x\n")
    io.atomic_write_wav(tmp_path / "a.wav", np.zeros(160, dtype=np.float32), 16000)
    with open(tmp_path / "plain.txt", "w") as f:  # the process's umask, as io read it
        f.write("x\n")
    want = (tmp_path / "plain.txt").stat().st_mode & 0o777
    assert want & 0o044, "this test needs a umask that lets others read (022 or 002)"
    assert (tmp_path / "results.md").stat().st_mode & 0o777 == want
    assert (tmp_path / "a.wav").stat().st_mode & 0o777 == want
