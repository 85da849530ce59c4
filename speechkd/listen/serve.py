"""A loopback-only server for the listening site that also stores answers in SQLite.

The pages POST each trial's ratings to ``api/answers`` when loaded over http
(from ``file://`` they keep them in localStorage only). Every posted row is
validated like an exported answers file; ``GET /api/answers.csv`` returns all
stored rows. The server binds 127.0.0.1 only: reach it from elsewhere through
an SSH tunnel, never by exposing it.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import sqlite3
import threading
from datetime import datetime, timezone
from functools import partial
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

from speechkd.errors import SpeechkdError
from speechkd.listen.results import REQUIRED, parse_row

logger = logging.getLogger(__name__)

MAX_BODY = 1 << 20
COLUMNS = REQUIRED + ("other", "kind", "expected", "position")
_SCHEMA = f"""CREATE TABLE IF NOT EXISTS answers (
  site_id TEXT NOT NULL, {', '.join(c + ' NOT NULL' for c in COLUMNS)}, received TEXT NOT NULL,
  PRIMARY KEY (site_id, listener, test, item, system, other, kind))"""


class _Store:
    def __init__(self, path: Path):
        self.path, self.lock = path, threading.Lock()
        with self._connect() as db:
            db.execute(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=10)

    def add(self, site_id: str, rows: list[dict]) -> None:
        now = datetime.now(timezone.utc).isoformat()
        with self.lock, self._connect() as db:  # one transaction: all rows or none
            db.executemany(f"INSERT OR REPLACE INTO answers VALUES (?, {', '.join('?' * len(COLUMNS))}, ?)",
                           [(site_id, *(r[c] for c in COLUMNS), now) for r in rows])

    def csv(self) -> str:
        with self.lock, self._connect() as db:
            rows = db.execute(f"SELECT {', '.join(COLUMNS)} FROM answers ORDER BY listener, test, position").fetchall()
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\r\n")
        w.writerow(COLUMNS)
        w.writerows([[_cell(v) for v in row] for row in rows])
        return buf.getvalue()


def _cell(v: object) -> object:
    """A CSV cell safe to open in a spreadsheet: text starting with = + - @ (a formula there,
    e.g. a listener id ``=HYPERLINK(...)``) gets a leading apostrophe (OWASP CSV injection).
    Numbers are left alone, so CMOS scores like -2 stay numbers."""
    if isinstance(v, str) and v[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + v
    return v


def _bad_path(raw: str) -> str | None:
    """Why a request path is refused (400), or None. Checked on the decoded path, so that
    ``%00``, ``%2e%2e`` or ``%5c`` cannot slip past as they would on the raw one."""
    path = unquote(raw.split("?", 1)[0].split("#", 1)[0], errors="strict")
    if any(ord(c) < 32 or ord(c) == 127 for c in path):
        return "control character in the path"
    if "\\" in path:
        return "backslash in the path"
    if any(part == ".." for part in path.split("/")):
        return "'..' in the path"
    if len(path) > 2048:
        return "path too long"
    return None


class _Handler(SimpleHTTPRequestHandler):
    store: _Store
    site_id: str
    timeout = 15  # seconds a client may stall (e.g. a Content-Length longer than its body)

    def end_headers(self) -> None:
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def log_message(self, fmt: str, *args) -> None:
        logger.debug("%s " + fmt, self.address_string(), *args)

    def _reply(self, status: int, body: str, ctype: str = "application/json") -> None:
        data = body.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", f"{ctype}; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _refused(self) -> bool:
        """Reply 400/404 to a malformed or private path; True when it did."""
        try:
            why = _bad_path(self.path)
        except UnicodeDecodeError:
            why = "path is not UTF-8"
        if why:
            self._reply(HTTPStatus.BAD_REQUEST, json.dumps({"error": why}))
            return True
        path = unquote(self.path.split("?", 1)[0])
        if path.endswith((".sqlite", ".sqlite-journal", ".sqlite-wal")) or "/." in path:
            self._reply(HTTPStatus.NOT_FOUND, '{"error": "not found"}')
            return True
        return False

    def do_GET(self) -> None:
        if self._refused():
            return None
        if unquote(self.path.split("?", 1)[0]) == "/api/answers.csv":
            return self._reply(HTTPStatus.OK, self.store.csv(), "text/csv")
        try:
            return super().do_GET()
        except (ValueError, OSError) as e:  # e.g. a name the file system refuses
            logger.debug("GET %r: %s", self.path, e)
            return self._reply(HTTPStatus.NOT_FOUND, '{"error": "not found"}')

    def do_HEAD(self) -> None:
        if self._refused():
            return None
        try:
            return super().do_HEAD()
        except (ValueError, OSError):
            return self._reply(HTTPStatus.NOT_FOUND, '{"error": "not found"}')

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        # BaseHTTPRequestHandler echoes parts of a malformed request line into an HTML page:
        # reply with a fixed JSON body instead.
        try:
            self._reply(code, json.dumps({"error": HTTPStatus(code).phrase}))
        except (OSError, ValueError):
            pass

    def do_POST(self) -> None:
        if self._refused():
            return None
        if unquote(self.path.split("?", 1)[0]) != "/api/answers":
            return self._reply(HTTPStatus.NOT_FOUND, '{"error": "not found"}')
        try:
            n = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            n = -1
        if not 0 < n <= MAX_BODY:
            return self._reply(HTTPStatus.REQUEST_ENTITY_TOO_LARGE if n > MAX_BODY else HTTPStatus.LENGTH_REQUIRED,
                               '{"error": "bad Content-Length"}')
        try:
            body = json.loads(self.rfile.read(n).decode("utf-8"))
            if not isinstance(body, dict) or body.get("site_id") != self.site_id:
                raise SpeechkdError("site_id does not match this site (stale page? reload it)")
            rows = body.get("rows")
            if not isinstance(rows, list) or not rows:
                raise SpeechkdError("'rows' must be a non-empty list")
            checked = []
            for i, r in enumerate(rows, 1):
                if not isinstance(r, dict):
                    raise SpeechkdError(f"row {i}: expected an object")
                rating = parse_row(r, f"row {i}", "POST")
                checked.append({c: getattr(rating, c) for c in COLUMNS})
        except RecursionError:
            return self._reply(HTTPStatus.BAD_REQUEST, '{"error": "JSON nested too deeply"}')
        except (ValueError, UnicodeDecodeError, TypeError, KeyError, AttributeError, SpeechkdError) as e:
            return self._reply(HTTPStatus.BAD_REQUEST, json.dumps({"error": str(e)[:500]}))
        except OSError:  # the client stalled or went away mid-body
            self.close_connection = True
            return None
        self.store.add(self.site_id, checked)
        logger.info("stored %d rating(s) of listener %r", len(checked), checked[0]["listener"])
        return self._reply(HTTPStatus.OK, json.dumps({"stored": len(checked)}))


def make_server(site_dir: str | Path, port: int = 8000, db: str | Path | None = None) -> ThreadingHTTPServer:
    """A server bound to 127.0.0.1:port (0: any free port) for ``site_dir``; call ``serve_forever()``."""
    site_dir = Path(site_dir)
    meta = site_dir / "site.json"
    if not meta.is_file():
        raise SpeechkdError("not a listening site (no site.json)", path=str(site_dir),
                            hint="build it with `speechkd listen page`")
    site_id = json.loads(meta.read_text(encoding="utf-8"))["site_id"]
    store = _Store(Path(db) if db else site_dir / "answers.sqlite")
    handler = type("Handler", (_Handler,), {"store": store, "site_id": site_id})
    try:
        return ThreadingHTTPServer(("127.0.0.1", port), partial(handler, directory=str(site_dir)))
    except OSError as e:
        raise SpeechkdError(f"cannot listen on 127.0.0.1:{port} ({e.strerror})", field="--port",
                            hint="choose another port") from None
