"""SE deployment: ONNX export of the SE models (parity with PyTorch), the torch-free runtime,
frame-by-frame streaming equal to offline enhancement, and the SE server's route and limits."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

pytest.importorskip("onnxruntime", reason="onnxruntime is in the runtime extra")
pytest.importorskip("onnxscript", reason="the fixture exports models (export extra)")

from se_export_fixtures import noisy, write_se_exp  # noqa: E402
from speechkd.cli import main  # noqa: E402
from speechkd.enhance.exp import load_se_model  # noqa: E402
from speechkd.enhance.stream import torch_stream  # noqa: E402
from speechkd.errors import SpeechkdError  # noqa: E402
from speechkd.runtime import se as se_rt  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TOL = 1e-4  # max |difference| of enhanced waveforms (full scale 1)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def se(tmp_path_factory):
    """Both SE models as exp dirs (two checkpoints each) and exported (the SubbandGRU with --average 2)."""
    tmp = tmp_path_factory.mktemp("se_deploy")
    out = {}
    for model in ("subband_gru", "crn"):
        out[model] = write_se_exp(tmp / "exp" / model, model)
        average = ["--average", "2"] if model == "subband_gru" else []
        assert main(["export", "--model", str(out[model]), "--format", "onnx", "--out",
                     str(tmp / "exported" / model), *average]) == 0
        out[f"x_{model}"] = tmp / "exported" / model
    wav = tmp / "noisy.wav"
    sf.write(wav, noisy(1.3), 16000, subtype="FLOAT")
    out["wav"] = wav
    out["tmp"] = tmp
    return out


@pytest.mark.parametrize("model", ["subband_gru", "crn"])
def test_onnx_matches_pytorch(se, model):
    """The exported graph's enhanced waveform equals PyTorch's within 1e-4 at three lengths and
    levels; the export recorded its own check; the averaged export holds the averaged weights."""
    man = json.loads((se[f"x_{model}"] / "manifest.json").read_text())
    assert man["format"] == se_rt.FORMAT and man["model"] == model and man["sample_rate"] == 16000
    assert man["stft"] == {"n_fft": 512, "hop": 128, "window": "hann", "center": True, "compression": 0.3,
                           "rms_floor": 1e-5}
    assert man["causal"] and man["latency_ms"] == 32.0
    assert max(man["check"].values()) <= TOL
    average = 2 if model == "subband_gru" else 1
    assert man["source"]["average"] == average and len(man["source"]["checkpoints"]) == average
    ref_model = load_se_model(str(se[model]), average=average).model
    enh = se_rt.OnnxEnhancer(se[f"x_{model}"], threads=1)
    for seconds, gain in ((1.3, 1.0), (0.05, 0.01), (0.5117, 3.0)):
        x = gain * noisy(seconds, seed=3)
        with torch.no_grad():
            ref = ref_model(torch.from_numpy(x)[None])[0].numpy()
        y = enh(x, 16000)
        assert y.shape == x.shape and np.abs(y - ref).max() <= TOL
        assert np.abs(ref - x).max() > 0.05 * np.abs(x).max()  # the mask does something: the comparison can fail
    if average == 2:  # not the last checkpoint's weights alone
        last = load_se_model(str(se[model])).model
        with torch.no_grad():
            assert np.abs(last(torch.from_numpy(x)[None])[0].numpy() - y).max() > 10 * TOL


@pytest.mark.parametrize("n", [257, 600, 16000, 16001])
def test_frame_stream_is_torch_stft_istft(n):
    """The streaming STFT/overlap-add equals torch.istft(torch.stft(x) * M) with center=True for any
    chunking, and holds back at most one window of output."""
    rng = np.random.default_rng(n)
    x = (0.1 * rng.standard_normal(n)).astype(np.float32)
    w = torch.hann_window(512, dtype=torch.float64)
    spec = torch.stft(torch.from_numpy(x.astype(np.float64)), 512, 128, window=w, center=True, return_complex=True)
    level = se_rt.rms_level(x)

    def mask_fn(mag):  # pointwise, so that frames in any grouping give the same masks
        return 1 / (1 + np.exp(-4 * (mag - 0.8)))

    mag = se_rt.compressed(spec.numpy().T, level)
    ref = torch.istft(spec * torch.from_numpy(mask_fn(mag).T), 512, 128, window=w, center=True, length=n).numpy()
    for chunk in (1, 128, 1000, n):
        st = se_rt.FrameStream(mask_fn, 512, 128, level=level)
        outs, got = [], 0
        for i in range(0, n, chunk):
            outs.append(st.push(x[i:i + chunk]))
            got += len(outs[-1])
            assert got >= min(i + chunk, n) - 512 - 128 or i + chunk <= 257  # latency: one window and a hop
        outs.append(st.flush())
        y = np.concatenate(outs)
        assert len(y) == n and np.abs(y - ref).max() < 1e-6


@pytest.mark.parametrize("model", ["subband_gru", "crn"])
def test_stream_equals_offline(se, model):
    """Streamed one hop (or odd chunks) at a time with the utterance level: the offline output
    within 1e-4, in PyTorch and on onnxruntime; with the causal level: the same length, and close
    once the level has settled."""
    m = load_se_model(str(se[model]), average=2 if model == "subband_gru" else 1).model  # as exported
    enh = se_rt.OnnxEnhancer(se[f"x_{model}"], threads=1)
    x = noisy(1.3, seed=5)
    with torch.no_grad():
        ref = m(torch.from_numpy(x)[None])[0].numpy()
    level = se_rt.rms_level(x)
    for chunk in (128, 77):
        for stream in (torch_stream(m, level=level), enh.stream(level=level)):
            y = np.concatenate([stream.push(x[i:i + chunk]) for i in range(0, len(x), chunk)] + [stream.flush()])
            assert len(y) == len(x) and np.abs(y - ref).max() <= TOL
    causal = se_rt.stream_file(torch_stream(m), x, 128)
    assert len(causal) == len(x) and np.all(np.isfinite(causal))
    # a stationary input: the running RMS settles within half a second
    assert np.abs(causal - ref)[8000:].max() < 0.01 * np.abs(ref).max()


def test_non_causal_models_are_refused(se, tmp_path):
    with pytest.raises(SpeechkdError, match="not causal"):
        torch_stream(torch.nn.Linear(2, 2))
    bundle = tmp_path / "nc"
    shutil.copytree(se["x_subband_gru"], bundle)
    man = json.loads((bundle / "manifest.json").read_text())
    man["causal"] = False
    (bundle / "manifest.json").write_text(json.dumps(man))
    with pytest.raises(SpeechkdError, match="not causal"):
        se_rt.OnnxEnhancer(bundle).stream()


def test_enhance_cli_on_exported_dir_and_stream(se, tmp_path, capsys):
    wav = str(se["wav"])
    x, _ = sf.read(wav, dtype="float32")
    ref = load_se_model(str(se["crn"])).model
    with torch.no_grad():
        ref = ref(torch.from_numpy(x)[None])[0].numpy()
    outs = {}
    for name, args in {"onnx": ["--model", str(se["x_crn"])],
                       "onnx_stream": ["--model", str(se["x_crn"]), "--stream"],
                       "torch_stream": ["--model", str(se["crn"]), "--stream"]}.items():
        outs[name] = tmp_path / f"{name}.wav"
        assert main(["enhance", *args, "-i", wav, "-o", str(outs[name]), "--subtype", "FLOAT"]) == 0
    printed = capsys.readouterr().out
    assert "algorithmic latency 32.0 ms" in printed and "RTF" in printed
    y = {k: sf.read(p, dtype="float32")[0] for k, p in outs.items()}
    assert np.abs(y["onnx"] - ref).max() <= TOL
    assert np.abs(y["onnx_stream"] - y["torch_stream"]).max() <= TOL  # the same causal level in both
    # batch mode and S(T(y)) on exported dirs go through the PyTorch Enhancer's pipeline
    data = tmp_path / "data"
    data.mkdir()
    (data / "wav.scp").write_text(f"u1 {wav}\n")
    (data / "utt2spk").write_text("u1 s\n")
    (data / "text").write_text("u1 noise\n")
    assert main(["enhance", "--model", str(se["x_crn"]), "--data-dir", str(data), "--out-dir",
                 str(tmp_path / "batch"), "--subtype", "FLOAT"]) == 0
    assert np.abs(sf.read(tmp_path / "batch" / "u1.wav", dtype="float32")[0] - ref).max() <= TOL


@pytest.mark.parametrize("args, message", [
    (["--stream", "--data-dir", "{d}", "--out-dir", "{o}"], "--stream enhances one file"),
    (["--stream", "--teacher", "{crn}"], "--teacher"),
    (["--average", "2"], "fixed weights"),
])
def test_enhance_cli_refusals(se, tmp_path, capsys, args, message):
    fill = {"d": str(tmp_path), "o": str(tmp_path / "o"), "crn": str(se["crn"])}
    args = [a.format(**fill) for a in args]
    io_args = [] if "--data-dir" in args else ["-i", str(se["wav"]), "-o", str(tmp_path / "y.wav")]
    assert main(["enhance", "--model", str(se["x_subband_gru"]), *io_args, *args]) == 2
    assert message in capsys.readouterr().err
    assert main(["enhance", "--model", "builtin:highpass80", "-i", str(se["wav"]), "-o", str(tmp_path / "y.wav"),
                 "--stream"]) == 2
    assert "frame by frame" in capsys.readouterr().err


def test_export_refusals_and_damaged_manifest(se, tmp_path, capsys):
    assert main(["export", "--model", str(se["crn"]), "--out", str(tmp_path / "q"), "--quantize", "int8"]) == 2
    assert "--quantize does not apply to an SE model" in capsys.readouterr().err
    # an existing export with other settings is not overwritten silently
    assert main(["export", "--model", str(se["crn"]), "--out", str(se["x_subband_gru"])]) == 2
    assert "--overwrite" in capsys.readouterr().err
    bad = tmp_path / "bad"
    shutil.copytree(se["x_crn"], bad)
    (bad / se_rt.MASK).unlink()
    assert main(["enhance", "--model", str(bad), "-i", str(se["wav"]), "-o", str(tmp_path / "y.wav")]) == 2
    assert "mask.onnx is missing" in capsys.readouterr().err
    # an SE export given to the TTS synthesiser: one line that says which command takes it
    assert main(["synth", "--model", str(se["x_crn"]), "hello", "-o", str(tmp_path / "s.wav")]) == 2
    err = capsys.readouterr().err
    assert "speech enhancement model" in err and "speechkd enhance --model" in err and "Traceback" not in err


def test_exported_dir_without_torch_and_through_pipes(se, tmp_path, capsys):
    """In a fresh interpreter: one file offline, then ``--stream -i - -o -``: enhanced audio comes
    out while the input is still arriving (all but one window and a hop of the first second, before
    the rest is sent), the whole equals the file stream's, and torch and Lightning are never
    imported (nor by the SE server's modules)."""
    import select

    x = sf.read(se["wav"], dtype="float32")[0]
    pcm = tmp_path / "in16.wav"
    sf.write(pcm, x, 16000, subtype="PCM_16")
    assert main(["enhance", "--model", str(se["x_subband_gru"]), "--stream", "-i", str(pcm), "-o",
                 str(tmp_path / "file.wav"), "--subtype", "FLOAT"]) == 0
    data = pcm.read_bytes()
    first = 44 + 2 * 16000  # the header and the first second
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    model = str(se["x_subband_gru"])
    code = ("import contextlib, sys\n"
            "from speechkd.cli import main\n"
            "with contextlib.redirect_stdout(sys.stderr):  # standard output carries the streamed audio\n"
            f"    rc = main(['enhance', '--model', {model!r}, '-i', {str(pcm)!r}, '-o', {str(tmp_path / 'a.wav')!r}])\n"
            f"rc += main(['enhance', '--model', {model!r}, '--stream', '-i', '-', '-o', '-'])\n"
            "import speechkd.runtime.serve_se, speechkd.runtime.serve_cli\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'lightning', 'pytorch_lightning'))\n"
            "print('RC', rc, 'BAD', ','.join(bad), file=sys.stderr)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env)
    try:
        proc.stdin.write(data[:first])
        proc.stdin.flush()
        got, want = b"", 44 + 2 * (16000 - 512 - 128)
        fd = proc.stdout.fileno()
        while len(got) < want:
            ready, _, _ = select.select([fd], [], [], 60)
            chunk = os.read(fd, 1 << 16) if ready else b""
            assert chunk, f"no output after {len(got)} bytes: {proc.stderr.read().decode() if not ready else ''}"
            got += chunk
        rest, err = proc.communicate(data[first:], timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err.decode()
    y = sf.read(io.BytesIO(got + rest), dtype="float32")[0]
    ref = sf.read(tmp_path / "file.wav", dtype="float32")[0]
    assert len(y) == len(x) and np.abs(y - ref).max() <= 1 / 32767 + 1e-6  # 16-bit output
    assert b"algorithmic latency 32.0 ms" in err
    assert "RC 0 BAD \n" in err.decode(), err.decode()
    assert (tmp_path / "a.wav").exists()
    assert main(["enhance", "--model", str(se["x_subband_gru"]), "-i", "-", "-o", str(tmp_path / "o.wav")]) == 2
    assert "needs --stream" in capsys.readouterr().err


def _wav(x: np.ndarray, sr: int = 16000, channels: int = 1) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, np.repeat(x[:, None], channels, 1), sr, subtype="PCM_16", format="WAV")
    return buf.getvalue()


def test_se_server_route_and_limits(se):
    pytest.importorskip("starlette", reason="starlette is in the serve extra")
    pytest.importorskip("httpx", reason="the test client needs httpx")
    from starlette.testclient import TestClient

    from speechkd.runtime.serve import Limits
    from speechkd.runtime.serve_se import make_se_app

    enh = se_rt.OnnxEnhancer(se["x_subband_gru"], threads=1)
    client = TestClient(make_se_app(enh, Limits(max_body_bytes=60_000, max_pending=4, workers=2)))
    h = client.get("/health").json()
    assert h["status"] == "ok" and h["task"] == "enhance" and h["sample_rate"] == 16000 and h["latency_ms"] == 32.0
    x = noisy(1.0, seed=7)
    body = _wav(x)
    r = client.post("/enhance", content=body, headers={"Content-Type": "audio/wav"})
    assert r.status_code == 200 and r.headers["content-type"] == "audio/wav"
    y, sr = sf.read(io.BytesIO(r.content), dtype="float32")
    x16 = sf.read(io.BytesIO(body), dtype="float32")[0]
    assert sr == 16000 and len(y) == len(x) and np.abs(y - enh(x16, 16000)).max() <= 1 / 32767 + 1e-6
    cases = [
        (_wav(noisy(2.0)), "audio/wav", 413, "over 60000 bytes"),
        (b"RIFF not really a wav", "audio/wav", 400, "not audio"),
        (b"", "audio/x-wav", 400, "empty body"),
        (_wav(x[:4000], channels=2), "audio/wav", 400, "expected mono"),
        (_wav(x[:4000], sr=8000), "audio/wav", 400, "8000 Hz"),
        (_wav(x[:100]), "audio/wav", 400, "too short"),
        (body, "text/plain", 415, "content type"),
    ]
    for data, ctype, status, message in cases:
        r = client.post("/enhance", content=data, headers={"Content-Type": ctype})
        assert r.status_code == status and message in r.json()["error"], (status, r.text)
        assert r.json()["status"] == status
    assert client.get("/enhance").status_code == 405
    assert client.post("/synthesize", content=b"x").status_code == 404
    busy = TestClient(make_se_app(enh, Limits(max_pending=0)))
    r = busy.post("/enhance", content=body, headers={"Content-Type": "audio/wav"})
    assert r.status_code == 503 and r.headers["retry-after"] == "1"


def test_running_level_model_streams_exactly(se):
    """A model trained with ``level: running`` divides frame t by the RMS of x[: t*hop + n_fft/2]
    offline too, so the causal stream (no level given) is its offline output within 1e-4, in
    PyTorch and on onnxruntime; the level keeps f(a*y) = a*f(y)."""
    from se_export_fixtures import TINY
    from speechkd.enhance.stft import running_level
    tmp = se["tmp"]
    exp = write_se_exp(tmp / "exp" / "running", "subband_gru", {**TINY["subband_gru"], "level": "running"})
    assert main(["export", "--model", str(exp), "--format", "onnx", "--out", str(tmp / "exported" / "running")]) == 0
    enh = se_rt.OnnxEnhancer(tmp / "exported" / "running", threads=1)
    assert enh.level == "running" and max(enh.manifest["check"].values()) <= TOL
    m = load_se_model(str(exp)).model
    x = noisy(1.3, seed=7) * np.linspace(0.2, 1.5, int(1.3 * 16000), dtype=np.float32)  # a level that changes
    lv = running_level(torch.from_numpy(x)[None].double(), 512, 128)[0].numpy()
    assert np.allclose(lv, se_rt.running_levels(x, 512, 128), rtol=1e-9)
    with torch.no_grad():
        ref = m(torch.from_numpy(x)[None])[0].numpy()
        assert np.abs(m(torch.from_numpy(3 * x)[None])[0].numpy() - 3 * ref).max() <= 3 * TOL
    assert np.abs(enh(x, 16000) - ref).max() <= TOL
    for chunk in (128, 77, 1000):
        for stream in (torch_stream(m), enh.stream()):
            y = np.concatenate([stream.push(x[i:i + chunk]) for i in range(0, len(x), chunk)] + [stream.flush()])
            assert len(y) == len(x) and np.abs(y - ref).max() <= TOL
    # the utterance-level model of the same weights does differ: the level is what makes it exact
    same = write_se_exp(tmp / "exp" / "utterance", "subband_gru")
    with torch.no_grad():
        other = load_se_model(str(same)).model(torch.from_numpy(x)[None])[0].numpy()
    assert np.abs(other - ref).max() > 10 * TOL
