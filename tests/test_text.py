"""Text frontend: espeak-ng phonemes, characters, token lists, the `speechkd text` verb."""

from __future__ import annotations

import pytest

from speechkd.cli import main as cli_main
from speechkd.data.kaldi import DataDir, read_table, write_datadir
from speechkd.errors import SpeechkdError
from speechkd.text.frontend import PAUSE, SPACE, Frontend, normalize_text, number_words
from speechkd.text.tokens import SPECIALS, TokenList, UnknownSymbolError, build_token_list

SENTENCES = ["Hello, world! How are you today?", "Mr. Smith paid 23 dollars; \"really\" cheap.",
             "It's a test... isn't it?", "The quick brown fox jumps over the lazy dog."]


def test_phonemes_of_known_sentence():
    toks = Frontend().text_to_tokens("Hello, world!")
    # h ə l ˈ oʊ , <space> w ˈ ɜː l d !
    assert toks[:5] == ["h", "ə", "l", "ˈ", "oʊ"]
    attached = Frontend(stress_tokens=False).text_to_tokens("Hello, world!")
    assert attached[:4] == ["h", "ə", "l", "ˈoʊ"]
    assert toks[5:7] == [",", SPACE]
    assert "ɜː" in toks and toks.count("ˈ") == 2 and toks[-1] == "!"
    assert all(" " not in t and t for t in toks)


def test_stress_kept_or_removed():
    with_stress = Frontend().text_to_tokens("Today is beautiful.")
    without = Frontend(stress=False).text_to_tokens("Today is beautiful.")
    assert any(t.startswith("ˈ") for t in with_stress)
    assert not any("ˈ" in t or "ˌ" in t for t in without)


def test_punctuation_modes():
    text = "Wait... what?! Yes; no."
    keep = Frontend().text_to_tokens(text)
    assert [t for t in keep if t in ",.?!;:"] == [".", "?", ";", "."]  # "?!" and "..." are one pause
    pause = Frontend(punctuation="pause").text_to_tokens(text)
    assert pause.count(PAUSE) == 4 and not any(t in ",.?!;:" for t in pause)
    drop = Frontend(punctuation="drop", word_boundary=False).text_to_tokens(text)
    assert PAUSE not in drop and SPACE not in drop and not any(t in ",.?!;:" for t in drop)


def test_numbers_and_abbreviations():
    toks = " ".join(Frontend().text_to_tokens("Dr. Who has 2 cats."))
    assert "d ˈ ɑː k t ɚ" in toks  # "doctor", with no pause after the abbreviation
    assert "t ˈ uː" in toks
    assert number_words(1999) == "one thousand nine hundred ninety nine"
    assert number_words(0) == "zero" and number_words(1_000_000) == "one million"


def test_char_mode():
    toks = Frontend(kind="char").text_to_tokens('"It\'s" 42, OK!')
    assert toks == ["i", "t", "'", "s", SPACE, "f", "o", "r", "t", "y", SPACE, "t", "w", "o", ",", SPACE,
                    "o", "k", "!"]


def test_normalize_text():
    assert normalize_text('  “Hello”  ,world —  (ok)  ') == "Hello, world, ok"
    assert normalize_text("rock 'n' roll's") == "rock n roll's"


def test_batch_equals_single():
    fe = Frontend()
    assert fe.batch(SENTENCES) == [fe.text_to_tokens(s) for s in SENTENCES]
    ch = Frontend(kind="char")
    assert ch.batch(SENTENCES) == [ch.text_to_tokens(s) for s in SENTENCES]


def test_empty_text_names_utterance():
    with pytest.raises(SpeechkdError, match="utterance 'u7'.*no tokens"):
        Frontend().batch(["fine text", "..."], ["u6", "u7"])


def test_token_list_round_trip(tmp_path):
    fe = Frontend()
    seqs = fe.batch(SENTENCES)
    tl = build_token_list(seqs)
    assert tuple(tl.tokens[:3]) == SPECIALS and tl.pad_id == 0
    counts = [sum(s.count(t) for s in seqs) for t in tl.tokens[3:]]
    assert counts == sorted(counts, reverse=True)
    tl.save(tmp_path / "tokens.txt")
    tl2 = TokenList.load(tmp_path / "tokens.txt")
    assert tl2 == tl
    ids = tl2.encode(seqs[0])
    assert tl2.decode(ids) == seqs[0] and min(ids) >= 3


def test_unknown_symbol_error_names_utterance_and_symbol():
    tl = build_token_list([["a", "b"]])
    with pytest.raises(UnknownSymbolError) as e:
        tl.encode(["a", "z", "b", "q", "z"], utt="spk-001")
    msg = str(e.value)
    assert "spk-001" in msg and "'z'" in msg and "'q'" in msg and "--on-unknown map" in msg
    assert tl.encode(["a", "z"], on_unknown="map") == [tl.ids["a"], tl.unk_id]


def test_bad_token_list_file(tmp_path):
    (tmp_path / "t.txt").write_text("a\nb\n")
    with pytest.raises(SpeechkdError, match="must start with"):
        TokenList.load(tmp_path / "t.txt")


def _datadir(path, texts):
    dd = DataDir()
    for u, t in texts.items():
        dd.wav_scp[u], dd.text[u], dd.utt2spk[u] = f"/nowhere/{u}.wav", t, "spk"
    write_datadir(path, dd)


def test_cli_datadir_build_and_check(tmp_path, capsys):
    _datadir(tmp_path / "train", {"spk-1": "Hello world.", "spk-2": "How are you?"})
    _datadir(tmp_path / "dev", {"spk-3": "Hello you.", "spk-4": "Zebra jazz!"})
    tl_path = tmp_path / "token_list" / "tokens.txt"
    assert cli_main(["text", "--data-dir", str(tmp_path / "train"), "--out", str(tmp_path / "tok_train"),
                     "--build-token-list", str(tl_path)]) == 0
    assert (tmp_path / "token_list" / "frontend.yaml").exists()
    toks = read_table(tmp_path / "tok_train" / "tokens")
    assert toks["spk-1"].split() == Frontend().text_to_tokens("Hello world.")
    # dev holds phones the training text lacks: an error naming the utterance and the symbols
    assert cli_main(["text", "--data-dir", str(tmp_path / "dev"), "--out", str(tmp_path / "tok_dev"),
                     "--token-list", str(tl_path)]) == 2
    err = capsys.readouterr().err
    assert "spk-4" in err and "'z'" in err and "spk-3" not in err
    assert "spk-4" in (tmp_path / "tok_dev" / "unknown_symbols.txt").read_text()
    # the documented mapping
    assert cli_main(["text", "--data-dir", str(tmp_path / "dev"), "--out", str(tmp_path / "tok_dev"),
                     "--token-list", str(tl_path), "--on-unknown", "map"]) == 0
    assert "<unk>" in read_table(tmp_path / "tok_dev" / "tokens")["spk-4"].split()
    # a frontend that disagrees with the token list's is refused
    assert cli_main(["text", "--data-dir", str(tmp_path / "dev"), "--out", str(tmp_path / "x"),
                     "--token-list", str(tl_path), "--kind", "char"]) == 2
    assert "kind" in capsys.readouterr().err
    # a sentence with ids
    assert cli_main(["text", "--token-list", str(tl_path), "Hello world."]) == 0
    out = capsys.readouterr().out.splitlines()
    tl = TokenList.load(tl_path)
    assert tl.decode(map(int, out[1].split())) == out[0].split()
