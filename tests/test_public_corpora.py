"""Published corpora (LJSpeech, VCTK, LibriTTS-R, VoiceBank-DEMAND) on format-faithful replicas:
each replica has the published layout, each reader turns it into valid Kaldi data dirs whose audio
lasts as long as the corpus files, an incomplete corpus is one line and exit 2, and each recipe runs
its data stages through the same local/data.sh a real corpus takes."""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import os
import shutil
import subprocess
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from speechkd.audio import load_audio
from speechkd.cli import main as cli_main
from speechkd.data.kaldi import read_datadir, read_table
from speechkd.data.validate import validate_datadir
from speechkd.testing import replicas

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(shutil.which("flite") is None, reason="flite missing (tools/install_system.sh)")


@pytest.fixture(scope="module")
def reps(tmp_path_factory) -> dict[str, Path]:
    """One replica of each corpus (a few utterances each), shared by the module's tests."""
    base = tmp_path_factory.mktemp("replicas")
    noise = base / "demand" / "DKITCHEN"
    noise.mkdir(parents=True)
    for i in (1, 2):
        sf.write(noise / f"ch0{i}.wav", 0.05 * np.random.default_rng(i).standard_normal(48000), 48000,
                 subtype="PCM_16")
    return {"ljspeech": replicas.make_ljspeech(base / "lj", n_utts=6),
            "vctk": replicas.make_vctk(base / "vctk", speakers=("p225", "p226", "p315"), n_utts=3),
            "libritts_r": replicas.make_libritts_r(base / "ltr"),
            "voicebank_demand": replicas.make_voicebank_demand(base / "vbd"),
            "noise": base / "demand"}


def _prepare(name: str, db_root: Path, out: Path, *args: str) -> int:
    return cli_main(["prepare", name, "--db-root", str(db_root), "--out", str(out), *args])


def _check_dir(d: Path, rate: int) -> dict[str, str]:
    """Validate a data dir; every utterance's audio (through wav.scp: a plain wav file) lasts as
    long as its corpus file says (utt2dur from the header) at the recipe's rate. Returns wav.scp."""
    rep = validate_datadir(d, sample_rate=rate)
    assert rep.ok, rep.format()
    dd = read_datadir(d)
    dur = read_table(d / "utt2dur")
    assert set(dur) == set(dd.utt2spk)
    for utt in dd.utts:
        assert sf.info(dd.wav_scp[utt]).format == "WAV", utt
        wav, sr = load_audio(dd.wav_scp[utt], sample_rate=rate, utt=utt)
        assert abs(len(wav) / sr - float(dur[utt])) <= 2.0 / sr + 1e-4, utt
    return dd.wav_scp


# --------------------------------------------------------------------------- replicas: published layout

def test_replica_layouts(reps):
    lj = reps["ljspeech"]
    assert lj.name == "LJSpeech-1.1"
    rows = [line.split("|") for line in (lj / "metadata.csv").read_text().splitlines()]
    assert all(len(r) == 3 for r in rows) and rows[0][0] == "LJ001-0001"
    assert any('"' in r[1] for r in rows) and any(r[1] != r[2] for r in rows)  # quotes; raw != normalized
    info = sf.info(lj / "wavs/LJ001-0001.wav")
    assert (info.samplerate, info.channels, info.subtype, info.format) == (22050, 1, "PCM_16", "WAV")

    vctk = reps["vctk"]
    for mic in ("mic1", "mic2"):
        info = sf.info(vctk / f"wav48_silence_trimmed/p225/p225_001_{mic}.flac")
        assert (info.samplerate, info.channels, info.format) == (48000, 1, "FLAC")
    assert (vctk / "txt/p225/p225_001.txt").is_file() and not (vctk / "txt/p315").exists()
    assert (vctk / "wav48_silence_trimmed/p315/p315_001_mic1.flac").is_file()
    assert (vctk / "txt/p225/p225_004.txt").is_file()  # a transcript without audio
    assert not list((vctk / "wav48_silence_trimmed/p225").glob("p225_004_*"))
    assert (vctk / "speaker-info.txt").read_text().split()[:6] == ["ID", "AGE", "GENDER", "ACCENTS", "REGION",
                                                                  "COMMENTS"]

    ltr = reps["libritts_r"]
    wav = ltr / "train-clean-100/103/1241/103_1241_000000_000001.wav"
    assert sf.info(wav).samplerate == 24000
    assert wav.with_name("103_1241_000000_000001.normalized.txt").is_file()
    assert wav.with_name("103_1241_000000_000001.original.txt").is_file()
    assert (ltr / "SPEAKERS.txt").read_text().count(";ID  |SEX| SUBSET") == 1
    assert {p.name for p in ltr.iterdir() if p.is_dir()} == {"train-clean-100", "dev-clean", "test-clean"}

    vbd = reps["voicebank_demand"]
    for d in ("clean_trainset_28spk_wav", "noisy_trainset_28spk_wav", "clean_testset_wav", "noisy_testset_wav"):
        assert all(sf.info(p).samplerate == 48000 for p in (vbd / d).glob("*.wav"))
    assert (vbd / "trainset_28spk_txt/p226_001.txt").is_file() and (vbd / "testset_txt/p232_001.txt").is_file()
    assert {p.name.split("_")[0] for p in (vbd / "clean_testset_wav").glob("*.wav")} == {"p232", "p257"}
    clean, _ = sf.read(vbd / "clean_testset_wav/p232_001.wav")
    noisy, _ = sf.read(vbd / "noisy_testset_wav/p232_001.wav")
    assert clean.shape == noisy.shape and not np.allclose(clean, noisy)


# --------------------------------------------------------------------------- readers

def test_ljspeech_reader(reps, tmp_path):
    assert _prepare("ljspeech", reps["ljspeech"].parent, tmp_path, "--num-dev", "1", "--num-test", "2") == 0
    for split, n in (("train", 3), ("dev", 1), ("test", 2)):
        scp = _check_dir(tmp_path / split, 22050)
        assert len(scp) == n and all("/LJSpeech-1.1/wavs/" in v for v in scp.values())  # 22.05 kHz: in place
    # the held-out clips are the last ones of metadata.csv; the normalized column, quotes kept
    assert list(read_table(tmp_path / "test/text")) == ["LJ002-0001", "LJ002-0002"]
    text = read_table(tmp_path / "train/text")
    assert text["LJ001-0002"] == "In fourteen seventy the press came to Paris."
    assert read_table(tmp_path / "test/text")["LJ002-0002"] == 'He wrote, "the work is done," and left at five p.m.'


def test_eval_tts_analyses_at_the_corpus_rate(reps, tmp_path):
    """MCD of a 22.05 kHz corpus is measured at 22.05 kHz unless --sample-rate says otherwise."""
    assert _prepare("ljspeech", reps["ljspeech"], tmp_path / "data", "--num-dev", "1", "--num-test", "2") == 0
    syn = tmp_path / "syn"
    syn.mkdir()
    for utt, entry in read_table(tmp_path / "data/test/wav.scp").items():
        shutil.copy(entry, syn / f"{utt}.wav")
    args = ["eval", "tts", "--data-dir", str(tmp_path / "data/test"), "--wav-dir", str(syn), "--no-asr"]
    assert cli_main(args + ["--out", str(tmp_path / "e")]) == 0
    res = json.loads((tmp_path / "e/results.json").read_text())
    assert res["settings"]["sample_rate"] == 22050 and res["summary"]["mcd"]["mean"] == 0.0
    assert cli_main(args + ["--out", str(tmp_path / "e16"), "--sample-rate", "16000"]) == 0
    assert json.loads((tmp_path / "e16/results.json").read_text())["settings"]["sample_rate"] == 16000


def test_vctk_reader_skips_and_resamples(reps, tmp_path):
    args = ("--mic", "mic2", "--num-dev", "1", "--num-test", "1", "--nj", "2")
    assert _prepare("vctk", reps["vctk"], tmp_path, *args) == 0
    m = json.loads((tmp_path / "prepare.json").read_text())
    assert m["skipped"]["speakers_without_transcripts"] == ["p315"]
    assert m["skipped"]["speakers_without_transcripts_recordings"] == 3
    assert m["skipped"]["transcripts_without_audio"] == 2
    utts = set()
    for split in ("train", "dev", "test"):
        scp = _check_dir(tmp_path / split, 22050)
        assert all(v == str((tmp_path / "wav" / split / f"{u}.wav").resolve()) for u, v in scp.items())
        utts |= set(scp)
        for u in scp:  # the chosen microphone's recording, resampled
            mic2, _ = sf.read(reps["vctk"] / f"wav48_silence_trimmed/{u[:4]}/{u}_mic2.flac")
            assert abs(np.abs(mic2).max() - np.abs(sf.read(scp[u])[0]).max()) < 0.05
    assert utts == {f"{s}_{i:03d}" for s in ("p225", "p226") for i in (1, 2, 3)}
    # one voice, for a single-speaker model
    assert _prepare("vctk", reps["vctk"], tmp_path / "one", "--speakers", "p226", "--num-dev", "1",
                    "--num-test", "1") == 0
    assert {u[:4] for s in ("train", "dev", "test") for u in read_table(tmp_path / "one" / s / "utt2spk")} == {"p226"}
    # a rerun resamples nothing again
    stamp = {p: p.stat().st_mtime_ns for p in (tmp_path / "wav").rglob("*.wav")}
    assert _prepare("vctk", reps["vctk"], tmp_path, *args) == 0
    assert stamp == {p: p.stat().st_mtime_ns for p in (tmp_path / "wav").rglob("*.wav")}
    # no sentence in two splits
    texts = {s: set(read_table(tmp_path / s / "text").values()) for s in ("train", "dev", "test")}
    assert not (texts["test"] & (texts["train"] | texts["dev"]))


def test_libritts_r_reader(reps, tmp_path):
    assert _prepare("libritts_r", reps["libritts_r"], tmp_path) == 0
    scp = _check_dir(tmp_path / "train", 24000)
    assert set(read_table(tmp_path / "train/utt2spk").values()) == {"103", "1034"}
    assert "103-1241-000000-000001" in scp
    _check_dir(tmp_path / "dev", 24000)
    assert set(read_table(tmp_path / "test/utt2spk").values()) == {"121"}
    assert all("/LibriTTS_R/" in v for v in scp.values())  # 24 kHz: in place
    # another rate than the corpus's: resampled copies
    assert _prepare("libritts_r", reps["libritts_r"], tmp_path / "r22", "--rate", "22050") == 0
    assert all("/r22/wav/dev/" in v for v in _check_dir(tmp_path / "r22/dev", 22050).values())


def test_voicebank_demand_reader(reps, tmp_path):
    assert _prepare("voicebank_demand", reps["voicebank_demand"], tmp_path, "--dev-speakers", "p287",
                    "--noise-dir", str(reps["noise"])) == 0
    noisy = _check_dir(tmp_path / "train_noisy", 16000)
    clean = _check_dir(tmp_path / "train_clean_eval_only", 16000)
    assert set(noisy) == set(clean) == {f"{s}_00{i}" for s in ("p226", "p230") for i in (1, 2)}
    for u in noisy:  # the noisy set only, resampled; its clean speech beside it for evaluation only
        y, _ = sf.read(noisy[u])
        s, _ = sf.read(clean[u])
        y48, _ = sf.read(reps["voicebank_demand"] / "noisy_trainset_28spk_wav" / f"{u}.wav")
        assert "/train_noisy/" in noisy[u] and "/train_clean_eval_only/" in clean[u]
        assert abs(len(y) - len(y48) / 3) <= 1 and np.std(y - s) > 1e-3
    assert set(_check_dir(tmp_path / "dev_noisy", 16000)) == {"p287_001", "p287_002"}
    test = _check_dir(tmp_path / "test_voicebank", 16000)
    assert set(test) == set(_check_dir(tmp_path / "test_voicebank/ref", 16000))
    assert {u.split("_")[0] for u in test} == {"p232", "p257"}
    assert set(_check_dir(tmp_path / "extra_noise", 16000)) == {"DKITCHEN_ch01", "DKITCHEN_ch02"}


@pytest.mark.parametrize("name,breaks,expect", [
    ("ljspeech", "wavs/LJ001-0003.wav", "missing wavs/LJ001-0003.wav"),
    ("vctk", "speaker-info.txt", "missing speaker-info.txt"),
    ("libritts_r", "dev-clean", "missing dev-clean/"),
    ("voicebank_demand", "noisy_testset_wav/p257_002.wav", "missing noisy_testset_wav/p257_002.wav"),
])
def test_incomplete_corpus_is_one_line_and_exit_2(reps, tmp_path, capsys, name, breaks, expect):
    broken = tmp_path / "corpus"
    shutil.copytree(reps[name], broken)
    target = broken / breaks
    shutil.rmtree(target) if target.is_dir() else target.unlink()
    assert _prepare(name, broken, tmp_path / "data") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert expect in err and "expected layout" in err and "published at http" in err
    assert not (tmp_path / "data").exists()


# --------------------------------------------------------------------------- recipes on the replicas

def _recipe_copy(tmp_path: Path, rel: str) -> Path:
    (tmp_path / "recipes").symlink_to(ROOT / "recipes")
    (tmp_path / "tools").symlink_to(ROOT / "tools")
    dst = tmp_path / rel
    shutil.copytree(ROOT / rel, dst, ignore=shutil.ignore_patterns("data", "dump", "exp", "downloads"))
    return dst


def _run(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIRTUAL_ENV")}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run(["./run.sh", *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=1500)


# (corpus, rate, mels, options, every stage): each recipe's data stages on its replica; LJSpeech
# (22.05 kHz) and LibriTTS-R (24 kHz) end to end at the tiny preset, one test at each rate of the field,
# without the diffusion stages: nothing in them depends on the rate but the mels' shape, and the
# mini_en run (tests/test_recipe_smoke.py) covers them with LJSpeech's shape (80 mels)
TTS_RECIPES = [
    ("ljspeech", 22050, 80, ("--diffusion", "false"), True),
    pytest.param("vctk", 22050, 80, ("--local_data_opts", "--mic mic1"), False, marks=pytest.mark.slow),
    pytest.param("libritts_r", 24000, 100, ("--local_data_opts", "--subsets train-clean-100", "--diffusion", "false"),
                 True, marks=pytest.mark.slow),
]


@pytest.mark.parametrize("name,rate,n_mels,opts,full", TTS_RECIPES)
def test_tts_recipe_on_replica(reps, tmp_path, name, rate, n_mels, opts, full):
    d = _recipe_copy(tmp_path, f"egs/{name}/tts1")
    stop = () if full else ("--stop_stage", "2")
    r = _run(d, "--preset", "tiny", "--nj", "2", *stop, "--db_root", str(reps[name]), *opts)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    for split in ("train", "dev", "test"):
        _check_dir(d / "data" / split, rate)
        scp = [line.split() for line in (d / "dump/feats" / split / "feats.scp").read_text().splitlines()]
        assert len(scp) == len(read_table(d / "data" / split / "utt2spk"))
        z = np.load(d / "dump/feats" / split / scp[0][1])
        assert z["mel"].shape == (int(scp[0][2]), n_mels)
        assert (d / "dump/tokens" / split / "tokens").is_file()
    cfg = (d / "dump/feats/train/feature_config.yaml").read_text()
    assert f"sample_rate: {rate}" in cfg
    if name == "ljspeech":  # stage 9's vocoder distillation (off by default), Griffin-Lim standing in for the teacher
        r = _run(d, "--preset", "tiny", "--nj", "1", "--stage", "9", "--stop_stage", "9", "--force", "true",
                 "--vocoder", "false", "--vocoder_teacher", "griffin_lim", "--vocoder_students", "hifigan")
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
        for split in ("train", "dev"):
            assert len(list((d / "dump/vocoder_teacher/griffin_lim_feats" / split).glob("*.wav"))) == \
                len(read_table(d / "data" / split / "utt2spk"))
        assert "teacher_dir: dump/vocoder_teacher/griffin_lim_feats" in \
            (d / "exp/vocoder_hifigan_kd/config.yaml").read_text()
        assert (d / "exp/vocoder_hifigan_kd/checkpoints/last.ckpt").exists()
    if not full:
        return
    # every model and vocoder at the corpus rate: the teacher and the students speak the test text
    # through Griffin-Lim and the Vocos-like vocoder, at that rate; MCD is measured at it
    n_test = len(read_table(d / "data/test/utt2spk"))
    wavs = sorted((d / "exp").glob("**/synth*/test/*.wav"))
    assert len(wavs) >= 4 * n_test
    assert all(sf.info(w).samplerate == rate for w in wavs)
    table = json.loads((d / "exp/eval/results.json").read_text())
    systems = {r["system"]: r for r in table["systems"]}
    assert {"ground_truth", "resynth_griffin_lim", "fastspeech2", "fastspeech2_vocos"} <= set(systems)
    assert 0.0 < systems["resynth_griffin_lim"]["mcd"]["mean"] < 12.0
    assert len(list((d / "exp/resynth_griffin_lim/synth/test").glob("*.wav"))) == n_test
    assert (d / "exp/listen/index.html").is_file()


def test_tts_recipe_without_corpus_says_where_to_get_it(tmp_path):
    d = _recipe_copy(tmp_path, "egs/ljspeech/tts1")  # db.sh's default: downloads/LJSpeech-1.1, absent
    r = _run(d, "--preset", "tiny", "--stop_stage", "0")
    assert r.returncode != 0
    # the stage's own output (the console; the template repeats the log's tail on stderr)
    lines = [line for line in r.stdout.splitlines() if "speechkd prepare: error:" in line]
    assert len(lines) == 1 and "missing metadata.csv" in lines[0] and "keithito.com" in lines[0]


@pytest.mark.slow
def test_se_recipe_data_and_teacher_on_replica(reps, tmp_path):
    d = _recipe_copy(tmp_path, "egs/voicebank_demand/se1")
    r = _run(d, "--preset", "tiny", "--nj", "1", "--stop_stage", "2", "--db_root", str(reps["voicebank_demand"]),
             "--local_data_opts", f"--noise_root {reps['noise']} --dev_speakers p287")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    se = d / "data/se"
    assert all("/wav/train_noisy/" in v for v in _check_dir(se / "train_noisy", 16000).values())
    _check_dir(se / "test_voicebank/ref", 16000)
    # the noisy-target teacher trained on the noisy set (its config never names the clean speech)
    assert (d / "exp/teacher_nytt/checkpoints/last.ckpt").is_file()
    assert (d / "exp/clean_upper/checkpoints/last.ckpt").is_file()
    assert not (d / "data/speech").exists()  # nothing was mixed from clean speech


# --------------------------------------------------------------------------- download stage

class _RangeServer(http.server.BaseHTTPRequestHandler):
    """Serves ``files`` (name -> bytes) with HTTP Range support; records each request's Range."""

    files: dict[str, bytes] = {}
    ranges: list[str | None] = []

    def do_GET(self):  # noqa: N802 (http.server's name)
        body = self.files.get(self.path.lstrip("/"))
        if body is None:
            self.send_error(404)
            return
        rng = self.headers.get("Range")
        type(self).ranges.append(rng)
        code = 200
        if rng:
            start = int(rng.split("=")[1].split("-")[0])
            if start >= len(body):
                self.send_error(416)
                return
            body, code = body[start:], 206
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def http_files():
    """(files dict to fill, base URL) of a local HTTP server with Range support."""
    _RangeServer.files, _RangeServer.ranges = {}, []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _RangeServer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield _RangeServer.files, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _tar_bz2(src: Path, arcname: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:bz2") as t:
        t.add(src, arcname=arcname)
    return buf.getvalue()


def test_download_resumes_checks_and_unpacks(reps, tmp_path, http_files, capsys):
    files, base = http_files
    data = _tar_bz2(reps["ljspeech"], "LJSpeech-1.1")
    files["LJSpeech-1.1.tar.bz2"] = data
    sha = hashlib.sha256(data).hexdigest()
    dest = tmp_path / "downloads"
    dest.mkdir()
    (dest / "LJSpeech-1.1.tar.bz2.part").write_bytes(data[: len(data) // 2])  # an interrupted download
    args = ["download", "ljspeech", "--dest", str(dest), "--url", f"{base}/LJSpeech-1.1.tar.bz2", "--sha256", sha]
    assert cli_main(args) == 0
    assert _RangeServer.ranges == [f"bytes={len(data) // 2}-"]  # resumed, not restarted
    assert (dest / "LJSpeech-1.1.tar.bz2").read_bytes() == data
    assert _prepare("ljspeech", dest / "LJSpeech-1.1", tmp_path / "data", "--num-dev", "1", "--num-test", "1") == 0
    assert cli_main(args) == 0 and len(_RangeServer.ranges) == 1  # unpacked already: nothing fetched
    capsys.readouterr()

    # a corrupt download: one line, exit 2, nothing kept
    bad = tmp_path / "bad"
    assert cli_main(["download", "ljspeech", "--dest", str(bad), "--url", f"{base}/LJSpeech-1.1.tar.bz2",
                     "--sha256", "0" * 64]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "SHA-256 is " + sha in err
    assert not list(bad.iterdir())


def test_download_refuses_members_outside_dest(tmp_path, http_files, capsys):
    files, base = http_files
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        info = tarfile.TarInfo("../escaped.txt")
        info.size = 3
        t.addfile(info, io.BytesIO(b"bad"))
    files["evil.tar.gz"] = buf.getvalue()
    sha = hashlib.sha256(buf.getvalue()).hexdigest()
    dest = tmp_path / "d"
    assert cli_main(["download", "libritts_r", "--dest", str(dest), "--url", f"{base}/evil.tar.gz",
                     "--sha256", sha]) == 2
    assert "unsafe member refused" in capsys.readouterr().err and not (tmp_path / "escaped.txt").exists()
    assert cli_main(["download", "libritts_r", "--dest", str(dest)]) == 2  # no pinned archive: says so
    assert "--url" in capsys.readouterr().err


def test_recipe_download_stage(reps, tmp_path, http_files):
    files, base = http_files
    data = _tar_bz2(reps["ljspeech"], "LJSpeech-1.1")
    files["LJSpeech-1.1.tar.bz2"] = data
    d = _recipe_copy(tmp_path, "egs/ljspeech/tts1")
    opts = (f"--download true --download_url {base}/LJSpeech-1.1.tar.bz2 "
            f"--download_sha256 {hashlib.sha256(data).hexdigest()}")
    r = _run(d, "--preset", "tiny", "--stop_stage", "0", "--local_data_opts", opts)  # db.sh: downloads/LJSpeech-1.1
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert (d / "downloads/LJSpeech-1.1/metadata.csv").is_file()
    assert len(read_table(d / "data/train/wav.scp")) == 2
