"""An exported SE model behind HTTP (``speechkd serve --model DIR`` on an exported SE dir):
Starlette on uvicorn, no torch; the limits, errors and shutdown of :mod:`speechkd.runtime.serve`.

    GET  /health    {"status": "ok", "task": "enhance", "model", "sample_rate", "latency_ms", "busy", "limits"}
    POST /enhance   a wav body (audio/wav, audio/x-wav, audio/wave or application/octet-stream), mono,
                    at the model's sample rate -> the enhanced audio/wav (16-bit PCM, the input's length)

Each refusal is a JSON body ``{"error": ..., "status": N}`` before any enhancement: 413 for a body
over ``max_body_bytes``; 400 for a body that is not audio soundfile reads, audio that is not mono,
at another sample rate, or shorter than half an STFT window; 415 for another content type; 503
(with Retry-After) when ``max_pending`` requests are in flight; 404/405 for other paths and methods.
Enhancements run in worker threads (``workers`` at a time; onnxruntime releases the GIL).
"""

from __future__ import annotations

import io
import logging

import numpy as np

from speechkd.errors import SpeechkdError
from speechkd.runtime.se import OnnxEnhancer
from speechkd.runtime.serve import HTTPError, Limits, json_error, read_body, run_server, wav_bytes

logger = logging.getLogger(__name__)

AUDIO_TYPES = ("audio/wav", "audio/x-wav", "audio/wave", "audio/vnd.wave", "application/octet-stream")
DEFAULT_MAX_BODY = 16 << 20  # bytes: ~8.7 minutes of 16-bit mono audio at 16 kHz


def decode_wav(body: bytes, sample_rate: int, min_samples: int) -> np.ndarray:
    """The mono float32 samples of a request body, or an HTTPError 400 saying what is wrong."""
    import soundfile as sf  # why: an optional package of the runtime extra, needed only to answer

    if not body:
        raise HTTPError(400, "empty body: send a wav file")
    try:
        wav, sr = sf.read(io.BytesIO(body), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError) as e:
        raise HTTPError(400, f"the body is not audio soundfile can read ({' '.join(str(e).split())[:120]})") from None
    if wav.shape[1] != 1:
        raise HTTPError(400, f"audio has {wav.shape[1]} channels, expected mono")
    if sr != sample_rate:
        raise HTTPError(400, f"sample rate is {sr} Hz but the model works at {sample_rate} Hz: resample it first")
    if len(wav) < min_samples:
        raise HTTPError(400, f"{len(wav)} samples: too short to enhance (at least {min_samples})")
    if not np.all(np.isfinite(wav)):
        raise HTTPError(400, "the audio holds NaN or infinite samples")
    return wav[:, 0]


def make_se_app(enh: OnnxEnhancer, limits: Limits):
    """The Starlette application serving ``enh`` under ``limits`` (``max_chars`` does not apply)."""
    import anyio  # why: the serve extra (starlette, uvicorn) is optional; imported when a server is made
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    state = {"pending": 0}
    workers = anyio.CapacityLimiter(limits.workers)

    def run(body: bytes) -> bytes:
        wav = decode_wav(body, enh.sample_rate, enh.n_fft // 2 + 1)
        try:
            return wav_bytes(enh(wav, enh.sample_rate), enh.sample_rate)
        except SpeechkdError as e:
            raise HTTPError(400, str(e)) from None

    async def enhance(request: Request) -> Response:
        if state["pending"] >= limits.max_pending:
            return json_error(503, f"busy: {limits.max_pending} requests in flight", {"Retry-After": "1"})
        state["pending"] += 1  # one event loop: no lock needed
        try:
            ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if ctype not in AUDIO_TYPES:
                raise HTTPError(415, f"content type {ctype!r}: send audio/wav")
            body = await read_body(request, limits.max_body_bytes)
            return Response(await anyio.to_thread.run_sync(run, body, limiter=workers), media_type="audio/wav")
        except HTTPError as e:
            return json_error(e.status, e.message, e.headers)
        finally:
            state["pending"] -= 1

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "task": "enhance", "model": enh.name, "sample_rate": enh.sample_rate,
                             "latency_ms": 1000 * enh.latency_seconds, "busy": state["pending"],
                             "limits": {k: v for k, v in vars(limits).items() if k != "max_chars"}})

    async def http_error(request: Request, exc: HTTPException) -> Response:
        return json_error(exc.status_code, exc.detail or "error")

    routes = [Route("/health", health, methods=["GET"]), Route("/enhance", enhance, methods=["POST"])]
    return Starlette(routes=routes, exception_handlers={HTTPException: http_error})


def serve_se(model: str, *, host: str = "127.0.0.1", port: int = 8000, limits: Limits | None = None,
             threads: int = 1) -> None:
    """Load the exported SE dir ``model`` and serve it until SIGINT/SIGTERM (requests in flight finish first)."""
    enh = OnnxEnhancer(model, threads=threads)
    run_server(make_se_app(enh, limits or Limits(max_body_bytes=DEFAULT_MAX_BODY)), host, port,
               f"{model} ({enh.name}, speech enhancement at {enh.sample_rate} Hz)", "POST /enhance, GET /health")
