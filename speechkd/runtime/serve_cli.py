"""``speechkd serve``: an exported model (``speechkd export``) behind HTTP, on loopback by default.
An exported SE model is served at ``POST /enhance`` (wav in, enhanced wav out; :mod:`speechkd.runtime.serve_se`).

    speechkd serve --model exported/fs2                      # http://127.0.0.1:8000/
    curl -s localhost:8000/health
    curl -s -H 'Content-Type: application/json' -d '{"text": "Hello there.", "speed": 1.0}' \\
        localhost:8000/synthesize -o hello.wav
    curl -s --data-binary 'Hello there.' -H 'Content-Type: text/plain' localhost:8000/synthesize -o hello.wav

Requests over the limits get a 4xx JSON error (413 body or text too long, 400 bad input, 415
content type, 503 with Retry-After when --max-pending requests are in flight); see
:mod:`speechkd.runtime.serve`. Binding to another address than loopback is allowed with a warning
(the server has no authentication). Stop it with Ctrl-C or SIGTERM: requests in flight finish first.
"""

from __future__ import annotations

import argparse
import os

from speechkd.errors import SpeechkdError
from speechkd.runtime.se import is_se_dir
from speechkd.utils import args as av


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", type=av.existing_dir, required=True, help="an exported dir (speechkd export)")
    p.add_argument("--host", type=av.nonempty_str, default="127.0.0.1",
                   help="address to bind (default %(default)s: this machine only)")
    p.add_argument("--port", type=av.port, default=8000, help="TCP port (default %(default)s; 0: any free one, printed at start)")
    p.add_argument("--workers", type=av.int_range(1, 256), default=min(4, os.cpu_count() or 1),
                   help="syntheses running at once, in threads (default: the cores, at most 4: %(default)s)")
    p.add_argument("--threads", type=av.int_range(1, 256), default=1,
                   help="onnxruntime threads per synthesis (default %(default)s)")
    p.add_argument("--max-chars", type=av.int_range(1, 1_000_000), default=1000,
                   help="longest text accepted, in characters (default %(default)s)")
    p.add_argument("--max-body", type=av.int_range(1, 1 << 30), default=None,
                   help="largest request body accepted, in bytes (default 65536 for text, 16777216 for the "
                        "audio of an SE model)")
    p.add_argument("--stream-chunk", type=av.int_range(0, 100_000), default=64,
                   help="streamed responses: mel frames vocoded per piece, with overlap so that the pieces join "
                        "seamlessly (Vocos; 0: each sentence whole) (default %(default)s)")
    p.add_argument("--max-pending", type=av.int_range(1, 100_000), default=16,
                   help="requests in flight (running and waiting) before answering 503 (default %(default)s)")


def main(args: argparse.Namespace) -> int:
    from speechkd.runtime.serve import Limits, serve  # why: starlette/uvicorn (the serve extra) only for a server

    if is_se_dir(args.model):
        return main_se(args)
    if args.max_body is None:
        args.max_body = 64 << 10
    if args.max_body > 64 << 20:
        raise SpeechkdError(f"must be at most {64 << 20} bytes for text, got {args.max_body}", field="--max-body")
    serve(args.model, host=args.host, port=args.port, threads=args.threads,
          limits=Limits(max_chars=args.max_chars, max_body_bytes=args.max_body, max_pending=args.max_pending,
                        workers=args.workers, stream_chunk=args.stream_chunk))
    return 0


def main_se(args: argparse.Namespace) -> int:
    """An exported SE dir: POST /enhance, wav in, enhanced wav out (speechkd.runtime.serve_se)."""
    from speechkd.runtime.serve import Limits  # why: starlette/uvicorn (the serve extra) only for a server
    from speechkd.runtime.serve_se import DEFAULT_MAX_BODY, serve_se

    serve_se(args.model, host=args.host, port=args.port, threads=args.threads,
             limits=Limits(max_body_bytes=args.max_body or DEFAULT_MAX_BODY, max_pending=args.max_pending,
                           workers=args.workers))
    return 0
