"""The listening site: built from generated wavs, then driven in headless Debian chromium from file://.

The browser part needs /usr/bin/chromium (tools/install_system.sh installs it) and the
``playwright`` Python package (the ``dev`` extra); it never downloads a browser.
Playback is made fast by using 0.3 s samples.
"""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path

import re

import numpy as np
import pytest
import soundfile as sf
from conftest import write_wav

from speechkd.errors import SpeechkdError
from speechkd.listen.manifest import build_manifest, load_manifest
from speechkd.listen.results import read_csv
from speechkd.listen.site import PageOptions, build_site

CHROMIUM = "/usr/bin/chromium"
XSS = "<script>alert(1)</script>"
SYSTEMS = ["gt", "sysA", "sysB"]


def _manifest(tmp_path: Path, seconds: float = 0.3) -> Path:
    sr = 16000
    t = np.arange(int(seconds * sr)) / sr
    utts = []
    for i, text in enumerate(["The birch canoe slid on the smooth planks.", f"Say {XSS} & \"this\" aloud."]):
        audio = {}
        for j, s in enumerate(SYSTEMS):
            p = tmp_path / "wav" / s / f"u{i}.wav"
            p.parent.mkdir(parents=True, exist_ok=True)
            sf.write(p, (0.3 * np.sin(2 * np.pi * (220 + 110 * j + 20 * i) * t)).astype(np.float32), sr)
            audio[s] = str(p.relative_to(tmp_path))
        utts.append({"id": f"u{i}", "text": text, "systems": audio})
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps({"systems": SYSTEMS, "reference_system": "gt", "utts": utts}))
    return path


def test_site_files_and_escaping(tmp_path: Path) -> None:
    index = build_site(_manifest(tmp_path), tmp_path / "site", PageOptions(seed=3, gold=1, repeats=1))
    site = index.parent
    for name in ("index.html", "mos.html", "cmos.html", "ab.html", "abx.html", "mushra.html", "listen.js",
                 "listen.css", "site.json"):
        assert (site / name).is_file(), name
    assert len(list((site / "spec").glob("*.png"))) == 2 * len(SYSTEMS)
    # 2 utts x 3 systems + 2 anchors per utt + degraded gold items
    assert len(list((site / "audio").glob("*.wav"))) >= 2 * len(SYSTEMS) + 4
    for page in site.glob("*.html"):
        html = page.read_text()
        assert XSS not in html, page.name          # neither raw in HTML nor in the embedded JSON
        assert "http://" not in html and "https://" not in html, page.name  # no CDN
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in index.read_text()
    data = json.loads((site / "mushra.html").read_text().split('id="listen-data">')[1].split("</script>")[0])
    kinds = sorted(s["kind"] for s in data["trials"][0]["stimuli"])
    assert kinds == ["anchor", "anchor", "normal", "normal", "reference"]


def test_manifest_errors(tmp_path: Path) -> None:
    m = _manifest(tmp_path)
    data = json.loads(m.read_text())
    data["utts"][1]["systems"]["sysB"] = "missing.wav"
    m.write_text(json.dumps(data))
    with pytest.raises(SpeechkdError, match=r"u1.*sysB.*does not exist"):
        build_site(m, tmp_path / "site")
    m.write_text(json.dumps({"systems": ["a"], "utts": [{"id": "x", "systems": {"a": "wav/gt/u0.wav"}}]}))
    with pytest.raises(SpeechkdError, match="needs a reference"):
        build_site(m, tmp_path / "site", PageOptions(tests=("mushra",)))
    m.write_text('{"utts": [')
    with pytest.raises(SpeechkdError, match="line 1"):
        build_site(m, tmp_path / "site")


# Speaker ids are untrusted text too (no whitespace: utt2spk splits on it). "<" sorts before "a".
SPK_XSS = '<img/src=x/onerror=alert(2)>"'
SPK_XSS_ESCAPED = "&lt;img/src=x/onerror=alert(2)&gt;&#34;"


def _two_speaker_datadir(tmp_path: Path) -> tuple[Path, Path]:
    """A data dir of 5 utterances, alice's and SPK_XSS's interleaved in C order, and a system dir
    of <utt>.wav; utterance ids do not start with the speaker, so manifest order is checkable."""
    data, synth = tmp_path / "data", tmp_path / "synth"
    data.mkdir()
    spk = {"u0": "alice", "u1": SPK_XSS, "u2": "alice", "u3": SPK_XSS, "u4": "alice"}
    for i, u in enumerate(spk):
        write_wav(tmp_path / "wav" / f"{u}.wav", seconds=0.2, seed=i)
        write_wav(synth / f"{u}.wav", seconds=0.2, kind="noise", seed=i)
    (data / "wav.scp").write_text("".join(f"{u} {tmp_path / 'wav' / u}.wav\n" for u in spk))
    (data / "text").write_text("".join(f"{u} sentence {u}\n" for u in spk))
    (data / "utt2spk").write_text("".join(f"{u} {s}\n" for u, s in spk.items()))
    return data, synth


def test_two_speakers_manifest_and_gallery(tmp_path: Path) -> None:
    data, synth = _two_speaker_datadir(tmp_path)
    out = build_manifest(str(data), {"gt": str(data), "tts": str(synth)}, tmp_path / "m.json", reference_system="gt")
    rows = json.loads(out.read_text())["utts"]
    assert [(r["id"], r["speaker"]) for r in rows] == [("u0", "alice"), ("u1", SPK_XSS), ("u2", "alice"),
                                                       ("u3", SPK_XSS), ("u4", "alice")]
    m = load_manifest(out)
    assert m.speakers == [SPK_XSS, "alice"]  # C order
    # --num-utts takes the speakers in turn (C order): u1, u0, u3, not the first three utterances.
    few = load_manifest(build_manifest(str(data), {"gt": str(data)}, tmp_path / "m3.json", num_utts=3))
    assert [(u.id, u.speaker) for u in few.utts] == [("u0", "alice"), ("u1", SPK_XSS), ("u3", SPK_XSS)]

    index = build_site(out, tmp_path / "site", PageOptions(tests=("mos",), gold=1, repeats=0))
    html = index.read_text()
    sections = html.split('<section class="speaker"')[1:]
    assert len(sections) == 2 and html.count("<table class=\"gallery\">") == 2
    heads = [re.search(r'<span class="speaker-name">(.*?)</span>', sec).group(1) for sec in sections]
    assert heads == [SPK_XSS_ESCAPED, "alice"]
    assert [re.findall(r'<div class="uttid">(.*?)</div>', sec) for sec in sections] == [["u1", "u3"],
                                                                                      ["u0", "u2", "u4"]]
    assert SPK_XSS_ESCAPED in html.split("<h2>Samples</h2>")[1].split('<section class="speaker"')[0]  # the nav
    for page in index.parent.glob("*.html"):
        assert SPK_XSS not in page.read_text() and "<img/src" not in page.read_text(), page.name


def test_one_speaker_page_as_before_and_old_manifests(tmp_path: Path) -> None:
    old = _manifest(tmp_path)  # written before speakers existed: no 'speaker' fields
    m = load_manifest(old)
    assert m.speakers == [] and [u.speaker for u in m.utts] == ["", ""]
    before = build_site(old, tmp_path / "old", PageOptions(tests=("mos",))).read_text()
    data = json.loads(old.read_text())
    for u in data["utts"]:
        u["speaker"] = SPK_XSS
    one = tmp_path / "one.json"
    one.write_text(json.dumps(data))
    assert load_manifest(one).speakers == [SPK_XSS]
    after = build_site(one, tmp_path / "one", PageOptions(tests=("mos",))).read_text()
    assert after == before and 'class="speaker' not in after  # one speaker: the page of old
    data["utts"][1].pop("speaker")
    one.write_text(json.dumps(data))
    with pytest.raises(SpeechkdError, match=r"speaker.*some utterances but not all.*utts\[1\]"):
        load_manifest(one)
    data["utts"][1]["speaker"] = ""
    one.write_text(json.dumps(data))
    with pytest.raises(SpeechkdError, match=r"u1.*speaker.*non-empty string"):
        load_manifest(one)


def _rate_all(page, choose) -> list[str]:
    """Play and rate every trial of the open test page with ``choose(trial, i)`` (the trial as
    planned by the page for this listener); returns the transcripts shown."""
    plan = page.evaluate("window.speechkdListen.plan(document.getElementById('listener').value.trim())")
    shown = []
    while not page.is_visible("#done"):
        t = plan[len(shown)]
        shown.append(page.text_content("#transcript"))
        assert shown[-1] == t["text"]
        # Rating is refused before the samples are played.
        assert page.is_disabled("#rating input >> nth=0") and page.is_disabled("#next-btn")
        page.evaluate("document.querySelector('#rating input').click()")
        assert page.evaluate("document.querySelector('#rating input').checked") is False
        buttons = page.locator("#stimuli button.play")
        for i in range(buttons.count()):
            buttons.nth(i).click()
            page.wait_for_selector(f"#stimuli .stimulus:nth-child({i + 1}) button.played", timeout=5000)
        page.locator(f"#rating input[value='{choose(t, len(shown) - 1)}']").check()
        page.click("#next-btn")
    return shown


def _download(page, button: str) -> Path:
    with page.expect_download() as dl:
        page.click(button)
    return Path(dl.value.path())


@pytest.mark.timeout(120)
@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} absent (tools/install_system.sh installs it)")
def test_browser_mos_and_ab(tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is in the dev extra")
    index = build_site(_manifest(tmp_path), tmp_path / "site", PageOptions(tests=("mos", "ab"), seed=7, gold=1,
                                                                        repeats=1))
    site = index.parent
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--autoplay-policy=no-user-gesture-required", "--mute-audio"])
        try:
            page = browser.new_context(accept_downloads=True, viewport={"width": 1100, "height": 700}).new_page()
            dialogs: list[str] = []
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))

            page.goto(index.as_uri())
            assert XSS in page.text_content("table.gallery")
            page.screenshot(path="/tmp/listen_gallery.png", full_page=True)

            page.goto((site / "mos.html").as_uri())
            page.fill("#listener", "L1")
            page.click("#start-btn")
            plan = page.evaluate("window.speechkdListen.plan('L1')")
            assert plan == page.evaluate("window.speechkdListen.plan('L1')")  # hash(seed, listener): stable
            assert [t["key"] for t in plan] != [t["key"] for t in page.evaluate("window.speechkdListen.plan('L2')")]
            shown = _rate_all(page, lambda t, i: 1 + i % 5)
            assert any(XSS in s for s in shown)

            page.goto((site / "ab.html").as_uri())
            assert page.input_value("#listener") == "L1"  # remembered
            page.click("#start-btn")
            ab_plan = page.evaluate("window.speechkdListen.plan('L1')")
            assert sorted(t["swap"] for t in ab_plan if t["kind"] == "normal") == [False, True]  # counterbalanced
            # Prefer the first system (A unless swapped); no preference on the first trial.
            _rate_all(page, lambda t, i: "none" if i == 0 else ("B" if t["swap"] else "A"))

            rows = json.loads(_download(page, "#export-json").read_text())["rows"]
            csv_rows = read_csv(_download(page, "#export-csv"))
            # Answers survive a reload: the same listener finds the test finished.
            page.reload()
            page.click("#start-btn")
            assert page.is_visible("#done")
            assert page.evaluate("window.speechkdListen.rows().length") == len(rows)
            assert dialogs == [] and errors == []
        finally:
            browser.close()

    assert len(csv_rows) == len(rows)
    assert {(r.test, r.item, r.system, r.other, r.kind) for r in csv_rows} == \
        {(r["test"], r["item"], r["system"], r["other"], r["kind"]) for r in rows}
    assert all(r["listener"] == "L1" and r["plays"] >= 1 and r["listening_time_s"] > 0 for r in rows)
    mos = [r for r in rows if r["test"] == "mos"]
    normal = sorted((r["item"], r["system"]) for r in mos if r["kind"] == "normal")
    assert normal == sorted(itertools.product(["u0", "u1"], SYSTEMS))  # every item rated exactly once
    assert [r["kind"] for r in mos].count("gold") == 1 and [r["kind"] for r in mos].count("repeat") == 1
    assert all(r["expected"] == "<=2" for r in mos if r["kind"] == "gold")
    ab = [r for r in rows if r["test"] == "ab"]
    normal = sorted((r["item"], r["system"], r["other"]) for r in ab if r["kind"] == "normal")
    assert normal == [("u0", "sysA", "sysB"), ("u1", "sysA", "sysB")]
    assert sorted(r["score"] for r in ab) == [0.5] + [1] * (len(ab) - 1)
    assert sorted(r["position"] for r in ab) == list(range(1, len(ab) + 1))
