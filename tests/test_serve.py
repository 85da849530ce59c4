"""``speechkd serve``: a real uvicorn process on a free loopback port serving an exported dir;
health, synthesis (JSON and text/plain), and every limit answered with a 4xx JSON error."""

from __future__ import annotations

import io
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("onnxruntime", reason="onnxruntime is in the runtime extra")
pytest.importorskip("uvicorn", reason="uvicorn is in the serve extra")
pytest.importorskip("starlette", reason="starlette is in the serve extra")
httpx = pytest.importorskip("httpx", reason="httpx is in the serve extra")
pytest.importorskip("onnxscript", reason="the fixture exports a model (export extra)")

import soundfile as sf  # noqa: E402


ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def server(exported):
    """``speechkd serve`` in its own process on a free loopback port (--port 0; the port it prints)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, "-m", "speechkd.cli", "serve", "--model", str(exported["fs2_vocos"]),
                             "--port", "0", "--max-chars", "200", "--max-body", "2000", "--workers", "2",
                             "--stream-chunk", "16"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in proc.stdout:  # type: ignore[union-attr]
        lines.append(line)
        m = re.search(r"on (http://127\.0\.0\.1:\d+)/", line)
        if m:
            url = m.group(1)
            break
    else:
        pytest.fail("the server did not start: " + "".join(lines))
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail("the server did not answer /health")
        time.sleep(0.1)
    yield url, proc
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def test_health_and_synthesis(server):
    url, _ = server
    h = httpx.get(url + "/health").json()
    assert h["status"] == "ok" and h["model"] == "fastspeech2" and h["vocoder"] == "vocos" and h["speakers"] == []
    r = httpx.post(url + "/synthesize", json={"text": "the quick brown fox.", "speed": 1.0})
    assert r.status_code == 200 and r.headers["content-type"] == "audio/wav"
    wav, sr = sf.read(io.BytesIO(r.content))
    assert sr == h["sample_rate"] and len(wav) > 0
    slow = httpx.post(url + "/synthesize", json={"text": "the quick brown fox.", "speed": 0.5})
    assert len(sf.read(io.BytesIO(slow.content))[0]) > len(wav)
    plain = httpx.post(url + "/synthesize", content="why? yes.", headers={"content-type": "text/plain"})
    assert plain.status_code == 200 and len(sf.read(io.BytesIO(plain.content))[0]) > 0


@pytest.mark.parametrize("kwargs,status,words", [
    ({"json": {"text": ""}}, 400, "empty text"),
    ({"json": {"text": "x" * 201}}, 413, "over the limit of 200"),
    ({"content": b"x" * 3000, "headers": {"content-type": "text/plain"}}, 413, "over 2000 bytes"),
    ({"content": b"{not json", "headers": {"content-type": "application/json"}}, 400, "malformed JSON"),
    ({"json": {"txt": "hello"}}, 400, "expected a JSON object"),
    ({"json": {"text": "hello", "voice": 3}}, 400, "unknown field"),
    ({"json": {"text": "hello", "speed": "fast"}}, 400, "speed must be a number"),
    ({"json": {"text": "hello", "speed": 0}}, 400, "speed must be in"),
    ({"json": {"text": "Über"}}, 400, "unknown symbol"),
    ({"content": b"\xff\xfe", "headers": {"content-type": "text/plain"}}, 400, "not UTF-8"),
    ({"content": b"hello", "headers": {"content-type": "image/png"}}, 415, "content type"),
])
def test_bad_requests_get_4xx_json(server, kwargs, status, words):
    url, proc = server
    r = httpx.post(url + "/synthesize", **kwargs)
    assert r.status_code == status and r.json()["status"] == status and words in r.json()["error"], r.text
    assert proc.poll() is None


def test_streamed_synthesis_sentence_by_sentence(server, exported):
    """stream: the wav arrives sentence by sentence in 16-frame pieces; its samples are those of each
    sentence synthesised alone (PCM16, one LSB of rounding), and the header is one decoders read."""
    import numpy as np

    from speechkd.runtime.synth import OnnxSynthesizer, split_sentences

    url, _ = server
    text = "The quick brown fox. Why? Yes; a lazy dog!"
    assert split_sentences(text) == ["The quick brown fox.", "Why?", "Yes; a lazy dog!"]
    with httpx.stream("POST", url + "/synthesize", json={"text": text, "stream": True}) as r:
        assert r.status_code == 200 and r.headers["content-type"] == "audio/wav"
        chunks = list(r.iter_bytes())
    body = b"".join(chunks)
    rt = OnnxSynthesizer(str(exported["fs2_vocos"]))
    want = np.concatenate(list(rt.stream(text)))
    assert np.abs(np.concatenate(list(rt.stream(text, chunk_frames=16))) - want).max() < 1e-5
    got = np.frombuffer(body[44:], "<i2")
    assert len(got) == len(want) and np.abs(got - np.round(want * 32767)).max() <= 1
    wav, sr = sf.read(io.BytesIO(body), dtype="int16")
    assert sr == rt.sample_rate and len(wav) == len(want)
    bad = httpx.post(url + "/synthesize", json={"text": "Fine. Über.", "stream": True})
    assert bad.status_code == 400 and "unknown symbol" in bad.json()["error"]  # refused before any audio
    assert httpx.post(url + "/synthesize", json={"text": "x", "stream": "yes"}).status_code == 400
    assert httpx.get(url + "/health").json()["busy"] == 0  # streamed requests gave their slots back


def test_unknown_paths_and_methods_are_json(server):
    url, _ = server
    r = httpx.get(url + "/nope")
    assert r.status_code == 404 and r.json()["status"] == 404
    r = httpx.get(url + "/synthesize")
    assert r.status_code == 405 and r.json()["status"] == 405


def test_concurrent_requests_each_sound_as_alone(server, exported):
    """Requests arriving together (different texts, lengths and speeds) on two workers: each answer
    is the samples of its text synthesised alone (PCM16 rounding)."""
    import concurrent.futures

    import numpy as np

    from speechkd.runtime.synth import OnnxSynthesizer

    url, proc = server
    rt = OnnxSynthesizer(str(exported["fs2_vocos"]))
    reqs = [(t, sp) for t in ("the quick brown fox.", "a lazy dog sleeps here.", "why not?", "yes, the fox jumps.")
            for sp in (1.0, 1.5)] * 2
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda r: httpx.post(url + "/synthesize", json={"text": r[0], "speed": r[1]},
                                                     timeout=60), reqs))
    for (text, speed), r in zip(reqs, answers):
        assert r.status_code == 200, r.text
        got = sf.read(io.BytesIO(r.content), dtype="int16")[0].astype(np.int32)
        want = np.round(rt(text, speed=speed)[0] * 32767)
        assert len(got) == len(want) and np.abs(got - want).max() <= 2, (text, speed)
    assert proc.poll() is None and httpx.get(url + "/health").json()["busy"] == 0


def test_concurrent_requests_and_graceful_shutdown(server):
    """Requests from several clients at once all succeed; SIGTERM then stops the server cleanly."""
    import concurrent.futures

    url, proc = server
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        codes = list(pool.map(lambda i: httpx.post(url + "/synthesize", json={"text": f"yes {i}."}, timeout=60)
                              .status_code, range(12)))
    assert codes == [200] * 12
    proc.send_signal(signal.SIGTERM)
    # uvicorn shuts down gracefully, then re-raises the signal it caught (exit status -SIGTERM)
    assert proc.wait(timeout=30) in (0, -signal.SIGTERM)
    assert "Traceback" not in (proc.stdout.read() if proc.stdout else "")


def test_a_taken_port_is_one_error_line(exported, capsys):
    from speechkd.cli import main

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert main(["serve", "--model", str(exported["fs_gl"]), "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert f"cannot listen on 127.0.0.1:{port}" in err and "Traceback" not in err


def test_busy_server_answers_503(exported):
    """With --max-pending 1, a request arriving while another is in flight gets 503 + Retry-After
    (the app driven in-process through httpx's ASGI transport, the first request held in its worker)."""
    import asyncio
    import threading

    from speechkd.runtime.serve import Limits, make_app
    from speechkd.runtime.synth import OnnxSynthesizer

    synth = OnnxSynthesizer(str(exported["fs_gl"]))
    gate, entered = threading.Event(), threading.Event()
    real = synth.synthesize_ids

    def held(*a, **k):
        entered.set()
        gate.wait(30)
        return real(*a, **k)

    synth.synthesize_ids = held  # type: ignore[method-assign]
    app = make_app(synth, Limits(max_pending=1, workers=1))

    async def scenario():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
            first = asyncio.create_task(client.post("/synthesize", json={"text": "yes."}))
            while not entered.is_set():
                await asyncio.sleep(0.01)
            second = await client.post("/synthesize", json={"text": "yes."})
            gate.set()
            return await first, second

    first, second = asyncio.run(asyncio.wait_for(scenario(), 60))
    assert second.status_code == 503 and second.headers["retry-after"] == "1" and "busy" in second.json()["error"]
    assert first.status_code == 200


def test_speaker_field_of_a_multi_speaker_bundle(exported):
    """The app in process (starlette's test client) on the multi-speaker export: the speaker picks the
    voice, its absence or an unknown one is a 400 naming the voices."""
    from starlette.testclient import TestClient

    from speechkd.runtime.serve import Limits, make_app
    from speechkd.runtime.synth import OnnxSynthesizer

    client = TestClient(make_app(OnnxSynthesizer(str(exported["fs2_multi"])), Limits()))
    assert client.get("/health").json()["speakers"] == ["awb", "bdl", "clb"]
    a = client.post("/synthesize", json={"text": "the quick brown fox.", "speaker": "awb"})
    c = client.post("/synthesize", json={"text": "the quick brown fox.", "speaker": "clb"})
    assert a.status_code == c.status_code == 200 and a.content != c.content
    q = client.post("/synthesize?speaker=clb", content="the quick brown fox.", headers={"content-type": "text/plain"})
    assert q.status_code == 200 and q.content == c.content
    s = client.post("/synthesize", json={"text": "One. Two.", "speaker": "bdl", "stream": True})
    assert s.status_code == 200 and len(s.content) > 44
    for body, words in (({"text": "hi."}, "needs a speaker; it knows: awb, bdl, clb"),
                        ({"text": "hi.", "speaker": "zzz"}, "unknown speaker 'zzz'"),
                        ({"text": "hi.", "speaker": 3}, "speaker must be a string")):
        r = client.post("/synthesize", json=body)
        assert r.status_code == 400 and words in r.json()["error"], r.text


def test_bench_serve_load_test(exported, tmp_path, capsys):
    """``speechkd bench serve``: the server in a subprocess, 2 clients x 3 requests; every figure is
    there and plausible; a request the server refuses stops the run with one line."""
    import json

    from speechkd.cli import main

    out = tmp_path / "load.json"
    assert main(["bench", "serve", "--model", str(exported["fs2_vocos"]), "--clients", "2", "--requests", "3",
                 "--baseline", "2", "--workers", "2", "--json", str(out)]) == 0
    f = json.loads(out.read_text())["benches"][0]["facts"]
    assert f["requests"] == 6 and f["errors"] == 0 and f["clients"] == 2
    assert 0 < f["p50_ms"] <= f["p95_ms"] <= f["max_ms"] and f["requests_per_s"] > 0 and f["audio_s"] > 0
    assert f["ttfb_ms"] > 0 and f["single_p50_ms"] > 0 and f["rss_start_mib"] > 10 and f["rss_end_mib"] > 10
    assert f["mean_ms"] > 0 and f["mean_over_single_p50"] > 0
    assert f["queueing_floor"] == 2 / min(2, 2, max(1, (os.cpu_count() or 1) // 1))
    out_md = capsys.readouterr().out
    assert "p95 / single-client p50" in out_md and "queueing floor of that ratio" in out_md
    assert main(["bench", "serve", "--model", str(exported["fs2_multi"]), "--clients", "1", "--requests", "1",
                 "--baseline", "1"]) == 2
    assert "needs a speaker" in capsys.readouterr().err


def test_queueing_floor_is_littles_law():
    from speechkd.bench.serve import queueing_floor

    assert queueing_floor(8, 2, 1, 2) == 4.0  # 8 clients, two 1-thread workers on 2 cores: 4x
    assert queueing_floor(8, 4, 1, 2) == 4.0  # more workers than cores serve no more at once
    assert queueing_floor(8, 2, 2, 2) == 8.0  # 2-thread workers: one request at a time on 2 cores
    assert queueing_floor(1, 2, 1, 2) == 1.0  # one client never queues


def test_warm_up_at_full_concurrency_stops_on_a_refusal():
    """Every warm-up request is sent (n at once, each round), and a refused one stops the run with one line."""
    import threading
    import types

    from speechkd.bench.serve import warm_concurrent
    from speechkd.errors import SpeechkdError

    sent, lock = [], threading.Lock()

    class Client:
        def __init__(self, timeout):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def post(self, url, json):
            with lock:
                sent.append(url)
            return types.SimpleNamespace(status_code=503 if json.get("refuse") else 200, text="busy")

    fake = types.SimpleNamespace(Client=Client, HTTPError=OSError)
    warm_concurrent(fake, "http://x", {"text": "hi"}, 2, 1.0, rounds=3)
    assert sent == ["http://x/synthesize"] * 6
    with pytest.raises(SpeechkdError, match="2 requests at once failed during the warm-up \\(status 503"):
        warm_concurrent(fake, "http://x", {"refuse": True}, 2, 1.0)
