"""An HTTP server for an exported model (``speechkd serve``): Starlette on uvicorn, no torch.

    GET  /health       {"status": "ok", "model", "vocoder", "sample_rate", "speakers", "busy", "limits"}
    POST /synthesize   JSON {"text": "...", "speed": 1.0, "stream": false, "speaker": "ID"} or a
                       text/plain body (speaker, speed, stream as query parameters)
                       -> audio/wav (16-bit PCM); with "stream": true (or ?stream=1) the wav is sent
                       sentence by sentence, each in pieces of ``stream_chunk`` mel frames vocoded
                       as soon as the sentence's mel exists (a streamed wav header: sizes
                       0xFFFFFFFF), so the first audio arrives after the first sentence's acoustic
                       model and one chunk of vocoding

Limits, each a 4xx JSON error ``{"error": "...", "status": N}`` before any synthesis:
413 for a body over ``max_body_bytes`` or a text over ``max_chars``; 400 for malformed JSON, a
missing/empty text, a bad speed, a missing or unknown speaker of a multi-speaker model or a text
the model cannot speak (unknown symbols); 415 for
another content type; 503 (with Retry-After) when ``max_pending`` requests are already in flight;
404/405 for other paths and methods. Synthesis runs in worker threads (``workers`` at a time;
onnxruntime releases the GIL during a graph run); the text frontend runs under a lock, since
the espeak-ng library behind the phonemizer is not known to be thread-safe.
uvicorn finishes the requests in flight on SIGINT/SIGTERM before exiting (graceful shutdown).
"""

from __future__ import annotations

import io
import ipaddress
import json
import logging
import math
import struct
import threading
from dataclasses import dataclass

import numpy as np

from speechkd.errors import SpeechkdError
from speechkd.runtime.synth import OnnxSynthesizer

logger = logging.getLogger(__name__)


@dataclass
class Limits:
    """Request limits of the server."""

    max_chars: int = 1000          # characters of text per request
    max_body_bytes: int = 64 << 10  # bytes of request body
    max_pending: int = 16          # requests in flight (running + waiting) before 503
    workers: int = 1               # syntheses running at once (threads)
    stream_chunk: int = 64         # streamed responses: mel frames vocoded per piece (0: each sentence whole)


class HTTPError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


def wav_bytes(wav: np.ndarray, sr: int) -> bytes:
    import soundfile as sf  # why: an optional package of the runtime extra, needed only to answer

    buf = io.BytesIO()
    sf.write(buf, wav, sr, subtype="PCM_16", format="WAV")
    return buf.getvalue()


def streamed_wav_header(sr: int) -> bytes:
    """A 16-bit mono PCM wav header whose RIFF and data sizes are 0xFFFFFFFF (length unknown while
    streaming; the convention decoders such as ffmpeg and soundfile accept)."""
    return (b"RIFF" + struct.pack("<I", 0xFFFFFFFF) + b"WAVEfmt " + struct.pack("<IHHIIHH", 16, 1, 1, sr, sr * 2, 2, 16)
            + b"data" + struct.pack("<I", 0xFFFFFFFF))


def pcm16(wav: np.ndarray) -> bytes:
    """float [-1, 1] -> little-endian int16 samples (as soundfile's PCM_16 writes them)."""
    return (np.clip(wav, -1.0, 1.0) * 32767.0).round().astype("<i2").tobytes()


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def json_error(status: int, message: str, headers: dict[str, str] | None = None):
    """Every refusal's body: ``{"error": message, "status": status}``."""
    from starlette.responses import JSONResponse  # why: the serve extra is optional; imported when answering

    return JSONResponse({"error": message, "status": status}, status_code=status, headers=headers)


async def read_body(request, max_bytes: int) -> bytes:
    """The request body, refused (413) as soon as its declared or received size passes ``max_bytes``:
    a client cannot make the server hold more than that."""
    size = request.headers.get("content-length")
    if size is not None and (not size.isdigit() or int(size) > max_bytes):
        raise HTTPError(413, f"request body over {max_bytes} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise HTTPError(413, f"request body over {max_bytes} bytes")
    return bytes(body)


def make_app(synth: OnnxSynthesizer, limits: Limits):
    """The Starlette application serving ``synth`` under ``limits``."""
    import anyio  # why: the serve extra (starlette, uvicorn) is optional; imported when a server is made
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response, StreamingResponse
    from starlette.routing import Route

    state = {"pending": 0}
    workers = anyio.CapacityLimiter(limits.workers)
    frontend_lock = threading.Lock()

    def parse(request: Request, body: bytes) -> tuple[str, float, bool, str | None]:
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        try:
            raw = body.decode("utf-8")
        except UnicodeDecodeError:
            raise HTTPError(400, "the body is not UTF-8") from None
        speed: object = request.query_params.get("speed", "1.0")
        stream: object = request.query_params.get("stream", "0") in ("1", "true")
        speaker: object = request.query_params.get("speaker")
        if ctype == "application/json":
            try:
                data = json.loads(raw)
            except (ValueError, RecursionError):
                raise HTTPError(400, "malformed JSON") from None
            if not isinstance(data, dict) or not isinstance(data.get("text"), str):
                raise HTTPError(400, 'expected a JSON object {"text": "...", "speed": 1.0, "stream": false, '
                                     '"speaker": "ID"}')
            unknown = sorted(set(data) - {"text", "speed", "stream", "speaker"})
            if unknown:
                raise HTTPError(400, f"unknown field(s) {', '.join(unknown)} (known: text, speed, stream, speaker)")
            text, speed, stream = data["text"], data.get("speed", 1.0), data.get("stream", stream)
            speaker = data.get("speaker", speaker)
        elif ctype in ("text/plain", ""):
            text = raw
        else:
            raise HTTPError(415, f"content type {ctype!r}: send application/json or text/plain")
        if not isinstance(stream, bool):
            raise HTTPError(400, f"stream must be true or false, got {stream!r}")
        try:
            speed = float(speed)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise HTTPError(400, f"speed must be a number, got {speed!r}") from None
        if isinstance(speed, bool) or not math.isfinite(speed) or not 0.1 <= speed <= 10:
            raise HTTPError(400, f"speed must be in [0.1, 10], got {speed}")
        if speaker is not None and not isinstance(speaker, str):
            raise HTTPError(400, f"speaker must be a string, got {speaker!r}")
        try:
            synth.check_speakers([speaker or None])
        except SpeechkdError as e:
            raise HTTPError(400, str(e)) from None
        if not text.strip():
            raise HTTPError(400, "empty text")
        if len(text) > limits.max_chars:
            raise HTTPError(413, f"text of {len(text)} characters, over the limit of {limits.max_chars}")
        return text, speed, stream, (speaker or None) if synth.speakers else None

    def sentence_ids(text: str) -> list[list[int]]:
        with frontend_lock:
            try:
                return synth.sentence_ids(text)
            except SpeechkdError as e:
                raise HTTPError(400, str(e)) from None

    def speak(ids: list[int], speed: float, speaker: str | None) -> np.ndarray:
        try:
            return synth.synthesize_ids([ids], speed=speed, speakers=[speaker])[0][0]
        except SpeechkdError as e:
            raise HTTPError(400, str(e)) from None

    def run(text: str, speed: float, speaker: str | None) -> bytes:
        with frontend_lock:
            ids = synth.token_ids([text], ["request"])[0]
        if isinstance(ids, SpeechkdError):
            raise HTTPError(400, str(ids))
        return wav_bytes(speak(ids, speed, speaker), synth.sample_rate)

    def pieces(ids: list[int], speed: float, speaker: str | None):
        try:
            yield from synth.stream_ids(ids, speed=speed, speaker=speaker, chunk_frames=limits.stream_chunk)
        except SpeechkdError as e:
            raise HTTPError(400, str(e)) from None

    async def sentences(ids: list[list[int]], speed: float, speaker: str | None):
        """The streamed body: the header, then each sentence's samples as soon as they exist (one
        worker slot per piece, so concurrent streams interleave)."""
        try:
            yield streamed_wav_header(synth.sample_rate)
            for x in ids:
                gen = pieces(x, speed, speaker)
                while (piece := await anyio.to_thread.run_sync(next, gen, None, limiter=workers)) is not None:
                    yield pcm16(piece)
        finally:
            state["pending"] -= 1

    async def synthesize(request: Request) -> Response:
        if state["pending"] >= limits.max_pending:
            return json_error(503, f"busy: {limits.max_pending} requests in flight", {"Retry-After": "1"})
        state["pending"] += 1  # one event loop: no lock needed
        handed_over = False  # a streamed body releases its slot when it ends
        try:
            text, speed, stream, speaker = parse(request, await read_body(request, limits.max_body_bytes))
            if stream:
                ids = await anyio.to_thread.run_sync(sentence_ids, text, limiter=workers)
                handed_over = True
                return StreamingResponse(sentences(ids, speed, speaker), media_type="audio/wav")
            audio = await anyio.to_thread.run_sync(run, text, speed, speaker, limiter=workers)
            return Response(audio, media_type="audio/wav")
        except HTTPError as e:
            return json_error(e.status, e.message, e.headers)
        finally:
            if not handed_over:
                state["pending"] -= 1

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "model": synth.name, "vocoder": synth.voc["kind"],
                             "sample_rate": synth.sample_rate, "speakers": synth.speakers, "busy": state["pending"],
                             "limits": vars(limits)})

    async def http_error(request: Request, exc: HTTPException) -> Response:
        return json_error(exc.status_code, exc.detail or "error")

    routes = [Route("/health", health, methods=["GET"]), Route("/synthesize", synthesize, methods=["POST"])]
    return Starlette(routes=routes, exception_handlers={HTTPException: http_error})


def listen_socket(host: str, port: int):
    """A bound TCP socket for ``host:port`` (port 0: any free one), or one error line."""
    import socket

    try:
        family, kind, proto, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
    except OSError as e:
        raise SpeechkdError(f"cannot resolve {host!r} ({e.strerror or e})", field="--host") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
    except OSError as e:
        sock.close()
        raise SpeechkdError(f"cannot listen on {host}:{port} ({e.strerror or e})", field="--port",
                            hint="choose another --port (0: any free one) or --host") from None
    return sock


def run_server(app, host: str, port: int, what: str, routes: str) -> None:
    """Serve ``app`` on uvicorn until SIGINT/SIGTERM (requests in flight finish first), saying once
    listening what it serves, at which address, and its ``routes``."""
    try:
        import uvicorn  # why: the optional serve extra
    except ImportError:
        raise SpeechkdError("uvicorn is not installed", hint="pip install 'speechkd[serve]'") from None
    sock = listen_socket(host, port)  # bound here, so that a taken port is one error line
    if not is_loopback(host):
        logger.warning("serving on %s: reachable from other machines, with no authentication", host)
    print(f"serving {what} on http://{host}:{sock.getsockname()[1]}/ ({routes}; Ctrl-C to stop)", flush=True)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=30))
    server.run(sockets=[sock])


def serve(model: str, *, host: str = "127.0.0.1", port: int = 8000, limits: Limits | None = None,
          threads: int = 1) -> None:
    """Load ``model`` and serve it until SIGINT/SIGTERM (requests in flight finish first)."""
    synth = OnnxSynthesizer(model, threads=threads)
    run_server(make_app(synth, limits or Limits()), host, port, f"{model} ({synth.name} + {synth.voc['kind']})",
               "POST /synthesize, GET /health")
