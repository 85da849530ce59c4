"""`speechkd listen serve`: loopback-only static server that validates and stores POSTed answers."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from speechkd.errors import SpeechkdError
from speechkd.listen.results import read_csv
from speechkd.listen.serve import make_server

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never via a proxy


def _row(**kw) -> dict:
    r = {"listener": "L1", "test": "mos", "item": "u1", "system": "sysA", "other": "", "score": 4, "plays": 1,
         "listening_time_s": 0.3, "timestamp": "2024-01-01T00:00:00Z", "kind": "normal", "expected": "",
         "position": 1}
    return {**r, **kw}


@pytest.fixture
def server(tmp_path: Path):
    (tmp_path / "site.json").write_text(json.dumps({"site_id": "abc123"}))
    (tmp_path / "index.html").write_text("<!DOCTYPE html><title>x</title>")
    srv = make_server(tmp_path, port=0)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv, f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def _post(url: str, body: dict) -> tuple[int, dict]:
    req = urllib.request.Request(url + "/api/answers", data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with _OPENER.open(req, timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_store_validate_and_export(server, tmp_path: Path) -> None:
    srv, url = server
    assert srv.server_address[0] == "127.0.0.1"
    assert _post(url, {"site_id": "abc123", "rows": [_row(), _row(system="sysB", score=2, position=2)]}) == \
        (200, {"stored": 2})
    assert _post(url, {"site_id": "abc123", "rows": [_row(score=3)]})[0] == 200  # a re-answer replaces
    status, err = _post(url, {"site_id": "abc123", "rows": [_row(score=9)]})
    assert status == 400 and "1..5" in err["error"]
    assert _post(url, {"site_id": "other", "rows": [_row()]})[0] == 400
    with _OPENER.open(url + "/api/answers.csv", timeout=5) as r:
        (tmp_path / "got.csv").write_bytes(r.read())
    rows = read_csv(tmp_path / "got.csv")
    assert sorted((r.system, r.score) for r in rows) == [("sysA", 3), ("sysB", 2)]
    with _OPENER.open(url + "/index.html", timeout=5) as r:
        assert r.status == 200
    with pytest.raises(urllib.error.HTTPError) as e:
        _OPENER.open(url + "/answers.sqlite", timeout=5)
    assert e.value.code == 404


def test_not_a_site(tmp_path: Path) -> None:
    with pytest.raises(SpeechkdError, match="site.json"):
        make_server(tmp_path, port=0)


def test_csv_export_guards_formulas(server, tmp_path: Path) -> None:
    """A listener id a spreadsheet would run as a formula is exported with a leading apostrophe;
    read_csv gives the id back unchanged, and numeric CMOS scores stay plain numbers."""
    _, url = server
    rows = [_row(listener="=HYPERLINK(\"x\")"), _row(listener="@L2", test="cmos", other="sysB", score=-2)]
    assert _post(url, {"site_id": "abc123", "rows": rows})[0] == 200
    with _OPENER.open(url + "/api/answers.csv", timeout=5) as r:
        text = r.read().decode()
    assert "'=HYPERLINK" in text and "'@L2" in text and ",-2.0," in text
    (tmp_path / "got.csv").write_text(text)
    got = sorted((r.listener, r.score) for r in read_csv(tmp_path / "got.csv"))
    assert got == [("=HYPERLINK(\"x\")", 4), ("@L2", -2)]
