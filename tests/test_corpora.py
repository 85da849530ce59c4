"""Built-in corpora (speechkd.corpora): tiny real builds from the Debian packages.

Each corpus is built once per module at a few utterances; the tests then check
the data-dir contract, determinism, resumability and the corpus specifics.
"""

from __future__ import annotations

import json
import re
import zlib
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from speechkd.cli import main as cli_main
from speechkd.corpora import CORPORA, asterisk_en, common, mini_en, mini_multi, noise, synth, wordnet
from speechkd.corpora.common import dedupe_key, split_items, split_sizes
from speechkd.data.kaldi import read_datadir, sort_key
from speechkd.data.validate import validate_datadir
from speechkd.errors import SpeechkdError

SEED = 7


def check_datadir(path: Path) -> dict:
    """Kaldi contract: C-sorted unique keys, ids = speaker prefix + safe chars, 16 kHz mono PCM16."""
    for name in ("wav.scp", "text", "utt2spk", "spk2utt"):
        keys = [line.split(maxsplit=1)[0] for line in (path / name).read_text().splitlines()]
        assert keys == sorted(keys, key=sort_key) and len(keys) == len(set(keys)), f"{path}/{name}"
    rep = validate_datadir(path, sample_rate=16000)
    assert rep.ok and not rep.warnings, rep.format()
    dd = read_datadir(path)
    assert dd.utts and set(dd.wav_scp) == set(dd.text) == set(dd.utt2spk)
    for utt, spk in dd.utt2spk.items():
        assert re.fullmatch(r"[A-Za-z0-9_-]+", utt) and utt.startswith(spk + "_"), utt
        info = sf.info(dd.wav_scp[utt])
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16"), utt
        assert info.frames > 0 and dd.text[utt].strip()
    return {"utts": dd.utts, "text": dd.text, "spk": dd.utt2spk, "wav": dd.wav_scp}


def splits(out: Path, names=common.SPLITS) -> dict[str, dict]:
    return {s: check_datadir(out / s) for s in names}


def assert_disjoint_texts(sp: dict[str, dict]) -> None:
    seen: dict[str, str] = {}
    for name, d in sp.items():
        for t in {dedupe_key(t) for t in d["text"].values()}:
            assert t not in seen, f"text '{t}' in {seen.get(t)} and {name}"
            seen[t] = name


# --------------------------------------------------------------------------- unit tests

def test_clean_sentence():
    ok = wordnet.clean_sentence
    assert ok("The patient must be sedated before the operation") == \
        "The patient must be sedated before the operation."
    assert ok("he spent hours looking for the source of that quotation") == \
        "He spent hours looking for the source of that quotation."
    assert ok("Take these letters to the boss now?") == "Take these letters to the boss now?"
    for bad in ("too short here", "a hat with a diaphanous veil and a hat",  # fragment, no verb
                "We were billed for 4 nights in the hotel", "`hot' and `cold' are contrary terms",
                "he went_out into the cold night air", "he said (quietly) that he would go home",
                "He left early. She stayed all day long.", "the quick brown fox jumped over the lazy,"):
        assert ok(bad, frozenset({"jump"})) is None, bad


def test_wordnet_prompts_deterministic_prefix_and_heldout():
    a, b = wordnet.sentences(20, SEED), wordnet.sentences(40, SEED)
    assert a == b[:20] and a == wordnet.sentences(20, SEED) and a != wordnet.sentences(20, SEED + 1)
    assert len({dedupe_key(s) for s in b}) == 40
    assert all(re.fullmatch(r"[A-Z][A-Za-z ,.'?!-]*[.?!]", s) and 6 <= len(s.split()) <= 20 for s in b)
    held = {dedupe_key(s) for s in wordnet.heldout_sentences(200, SEED)}
    assert len(held) == 200 and not held & {dedupe_key(s) for s in wordnet.sentences(None, SEED)}


def test_split_sizes_and_groups():
    assert split_sizes(600) == (540, 30, 30) and split_sizes(5) == (3, 1, 1)
    assert split_sizes(10, num_dev=0, num_test=2) == (8, 0, 2)
    with pytest.raises(SpeechkdError):
        split_sizes(2)
    items = ["a", "b", "A!", "c", "d", "e", "B"]  # "a"/"A!" and "b"/"B" are one text each
    sp = split_items(items, 1, 1, key=lambda s: s)
    assert sp["test"] == ["a", "A!"] and sp["dev"] == ["b", "B"] and sp["train"] == ["c", "d", "e"]


def test_parse_psdur_restarts_per_line():
    out = "pau:0.100 hh:0.250 iy:0.300\npau:0.050 s:0.200\n"
    assert synth.parse_psdur(out) == [("pau", 100), ("hh", 150), ("iy", 50), ("pau", 50), ("s", 150)]
    assert synth.format_phones([("pau", 100), ("hh", 150)]) == "pau:0.100 hh:0.150"


def test_asterisk_transcripts():
    lines = ["; Core Asterisk Sounds in English", "", "beep: [this is a simple beep tone]",
             "silence/1: (1 second of silence)", "confbridge-join: <beep ascending>",
             "vm-intro: Please leave your message after the tone. (simple tone sound plays)",
             "letters/at: at [@]", "spy-iax2: IAX (note does not say \"2\")", "empty: ",
             "conf-x: Press 1 to mute, # to exit, or * for 162 options.",
             "dir-using: ... using your keypad", "activated: Activated.", "activated: Twice."]
    t = asterisk_en.parse_transcripts(lines)
    assert t == {"letters/at": "at", "spy-iax2": "iax", "activated": "activated.",
                 "conf-x": "press one to mute, pound to exit, or star for one hundred sixty two options.",
                 "dir-using": "using your keypad"}
    assert asterisk_en.number_words(1_000_021) == "one million twenty one"


def test_missing_packages_name_the_debian_package(monkeypatch, tmp_path):
    monkeypatch.setattr(common.shutil, "which", lambda name: None)
    with pytest.raises(SpeechkdError, match=r"Debian package flite.*install_system\.sh"):
        mini_en.build(str(tmp_path / "x"), num_utts=3)
    monkeypatch.undo()
    monkeypatch.setattr(wordnet, "WORDNET_DIR", tmp_path / "nowordnet")
    wordnet._pool.cache_clear()
    try:
        with pytest.raises(SpeechkdError, match="wordnet-base"):
            wordnet.sentences(3, SEED)
    finally:
        monkeypatch.undo()
        wordnet._pool.cache_clear()
    monkeypatch.setattr(asterisk_en, "SOUNDS_DIR", tmp_path / "nosounds")
    with pytest.raises(SpeechkdError, match="asterisk-core-sounds-en-g722"):
        asterisk_en.build(str(tmp_path / "y"))


# --------------------------------------------------------------------------- mini_en

@pytest.fixture(scope="module")
def mini_en_dirs(tmp_path_factory):
    a, b = tmp_path_factory.mktemp("mini_en_a"), tmp_path_factory.mktemp("mini_en_b")
    mini_en.build(str(a), num_utts=6, seed=SEED, nj=2)
    mini_en.build(str(b), num_utts=6, seed=SEED, nj=1)
    return a, b


def test_mini_en_deterministic_and_valid(mini_en_dirs):
    a, b = mini_en_dirs
    sa, sb = splits(a), splits(b)
    assert_disjoint_texts(sa)
    for s in common.SPLITS:
        assert sa[s]["utts"] == sb[s]["utts"] and sa[s]["text"] == sb[s]["text"]
        for u in sa[s]["utts"]:
            assert Path(sa[s]["wav"][u]).read_bytes() == Path(sb[s]["wav"][u]).read_bytes()
    assert sum(len(sa[s]["utts"]) for s in sa) == 6 and len(sa["dev"]["utts"]) == 1
    m = json.loads((a / "corpus.json").read_text())
    assert m["name"] == "mini_en" and m["seed"] == SEED and m["speakers"] == ["slt"]
    assert m["counts"] == {"train": 4, "dev": 1, "test": 1} and m["minutes"]["total"] > 0
    assert m["license"] and m["build_seconds"] >= 0


def test_mini_en_phone_durations_match_audio(mini_en_dirs):
    out = mini_en_dirs[0]
    for s in common.SPLITS:
        lines = (out / s / "phone_durations").read_text().splitlines()
        d = check_datadir(out / s)
        assert [line.split()[0] for line in lines] == d["utts"]
        for line in lines:
            utt, *phones = line.split()
            durs = [float(p.rsplit(":", 1)[1]) for p in phones]
            assert phones[0].startswith("pau:") and all(x >= 0 for x in durs)
            seconds = sf.info(d["wav"][utt]).duration
            assert abs(sum(durs) - seconds) < 0.02, (utt, sum(durs), seconds)


def test_mini_en_resume_skips_existing_audio(tmp_path):
    out = tmp_path / "c"
    m1 = mini_en.build(str(out), num_utts=4, seed=SEED)
    wavs = sorted((out / "wav").glob("*.wav"))
    mtimes = {p: p.stat().st_mtime_ns for p in wavs}
    wavs[0].unlink()
    (out / "wav" / ".slt_000001.wav.abc.tmp").write_bytes(b"half a wav")  # left by a killed run
    m2 = mini_en.build(str(out), num_utts=4, seed=SEED)
    assert (m1["generated"], m2["generated"], m2["skipped_existing"]) == (4, 1, 3)
    assert all(p.stat().st_mtime_ns == t for p, t in mtimes.items() if p != wavs[0])
    assert wavs[0].exists() and not list((out / "wav").glob(".*.tmp"))
    assert cli_main(["corpus", "mini_en", "--out", str(out), "--num-utts", "4", "--seed", "99"]) == 2
    assert cli_main(["corpus", "mini_en", "--out", str(out), "--num-utts", "4",
                     "--seed", str(SEED)]) == 0


# --------------------------------------------------------------------------- the others

def test_mini_multi_every_speaker_in_every_split(tmp_path):
    out = tmp_path / "mm"
    m = mini_multi.build(str(out), num_utts=18, seed=SEED, nj=2)
    sp = splits(out)
    assert_disjoint_texts(sp)
    assert len(m["speakers"]) >= 4 and m["speakers"] == sorted(mini_multi.VOICES)
    for s in common.SPLITS:
        assert set(sp[s]["spk"].values()) == set(m["speakers"]), s
    # Texts follow the seed: the same prompts as mini_en, each spoken once.
    texts = sorted(t for d in sp.values() for t in d["text"].values())
    assert texts == sorted(wordnet.sentences(18, SEED))


def test_asterisk_en_decodes_real_speech(tmp_path):
    out = tmp_path / "ast"
    m = asterisk_en.build(str(out), num_utts=4, seed=SEED, nj=2)
    sp = splits(out)
    assert "CC-BY-SA-3.0" in m["license"] and m["speakers"] == ["allison"]
    for d in sp.values():
        for utt in d["utts"]:
            assert re.fullmatch(r"allison_[a-z0-9_-]+", utt) and "[" not in d["text"][utt]
            wav, sr = sf.read(d["wav"][utt])
            name = utt[len("allison_"):]
            src = [p for p in (asterisk_en.SOUNDS_DIR / f"{name}.g722",
                               asterisk_en.SOUNDS_DIR / f"{name.replace('-', '/', 1)}.g722") if p.exists()]
            assert src and abs(len(wav) - 2 * src[0].stat().st_size) < 400, utt  # G.722: 2 samples/byte
            assert len(wav) / sr >= asterisk_en.MIN_SECONDS and np.abs(wav).max() > 0.05


def test_noise_is_highpassed_and_labelled(tmp_path):
    out = tmp_path / "noise"
    m = noise.build(str(out), num_utts=1, seed=SEED, nj=2)
    sp = splits(out, ("in_domain", "extraneous"))
    spk_in = set(sp["in_domain"]["spk"].values())
    assert set(noise.GENERATED) | {"sonicpi", "lmms"} <= spk_in
    assert set(sp["extraneous"]["spk"].values()) == {"freedesktop"}
    assert not any("audio-channel" in u for u in sp["extraneous"]["utts"])  # spoken files left out
    for name, d in sp.items():
        lic = dict(line.split(maxsplit=1) for line in (out / name / "utt2license").read_text().splitlines())
        assert sorted(lic, key=sort_key) == d["utts"]
        for utt in d["utts"]:
            wav, sr = sf.read(d["wav"][utt])
            assert 4.0 <= len(wav) / sr <= 10.0 and abs(np.abs(wav).max() - 0.9) < 0.01, utt
            power = np.abs(np.fft.rfft(wav)) ** 2
            low = power[np.fft.rfftfreq(len(wav), 1 / sr) < 80].sum() / power.sum()
            assert low < 0.01, (utt, low)
    assert "100 Hz" in m["processing"]
    # Babble talkers: espeak-ng voices at 16 kHz, none of them a voice any speech corpus here uses.
    talkers = sorted((out / "wav" / "speech").glob("*.wav"))
    assert {p.name.rsplit("_", 1)[0] for p in talkers} == set(noise.BABBLE_VOICES)
    assert all(sf.info(str(p)).samplerate == 16000 for p in talkers)
    assert not set(noise.BABBLE_VOICES) & (set(synth.FLITE_VOICES) | set(synth.FESTIVAL_VOICES)
                                            | set(mini_multi.VOICES))
    # Same seed, same clip: regenerate a few clips and compare bytes.
    stem = "ambi_drone"
    flac = f"{noise.SOURCES['sonicpi'][0]}/{stem}.flac"
    for kind, index, src in (("brown", 0, ()), ("white", 0, ()),
                             ("sonicpi", zlib.crc32(stem.encode()), (flac,))):
        uid = f"{kind}_{index:04d}" if not src else f"{kind}_{stem}"
        noise.make_clip(noise.ClipJob(kind, index, SEED, str(tmp_path / "again.wav"), src))
        assert (tmp_path / "again.wav").read_bytes() == (out / "wav" / f"{uid}.wav").read_bytes(), uid


def test_noise_dir_of_other_babble_voices_is_refused(tmp_path):
    # a dir built before the babble moved to espeak-ng: its babble clips would be reused, so it is refused
    (tmp_path / "wav").mkdir()
    (tmp_path / common._PARAMS).write_text(json.dumps({"name": "noise", "seed": SEED}))
    with pytest.raises(SpeechkdError, match=r"other settings \(babble None there, 'espeak: es_"):
        noise.build(str(tmp_path), num_utts=1, seed=SEED)


def test_registry_lists_all_corpora():
    assert list(CORPORA) == ["mini_en", "mini_multi", "asterisk_en", "noise"]
    assert all(callable(f) for f in CORPORA.values())
