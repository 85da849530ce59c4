"""Every option of every verb, fed bad values: exit status 2 (or 0/1 where the value is
legitimately accepted and the command then fails cleanly), never a traceback.

The verbs come from ``speechkd.cli.VERBS`` and their sub-commands from the argparse
sub-parsers, so a new verb or option is walked without editing this file. Runs in-process
(``speechkd.cli.main``); required inputs point at an empty directory or an empty file so that
accepted values fail fast, the working directory is a sandbox (``../../x`` stays in it), and
the few entry points that would start real work even then (corpus generation, benchmarks,
the HTTP server) are stubbed to stop with a SpeechkdError once their arguments are parsed.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import signal
import sys
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from speechkd import cli
from speechkd.errors import SpeechkdError

NO_VALUE = (argparse._StoreTrueAction, argparse._StoreFalseAction, argparse._StoreConstAction,
            argparse._HelpAction, argparse._VersionAction, argparse._CountAction, argparse._SubParsersAction)


def _leaves() -> list[tuple[list[str], argparse.ArgumentParser]]:
    """(argv prefix, parser) of every verb and sub-command."""
    root = cli.build_parser(list(cli.VERBS))
    verbs = next(a for a in root._actions if isinstance(a, argparse._SubParsersAction))
    out = []

    def walk(prefix, p):
        subs = [a for a in p._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs:
            out.append((prefix, p))
        for sp in subs:
            for name, child in sp.choices.items():
                walk(prefix + [name], child)

    for verb in cli.VERBS:
        walk([verb], verbs.choices[verb])
    return out


LEAVES = _leaves()


def _options(p: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in p._actions if not isinstance(a, NO_VALUE) and a.dest != "log_level"]


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    root = tmp_path_factory.mktemp("walk")
    paths = {"empty_dir": root / "empty", "empty_file": root / "empty.txt", "binary": root / "binary.bin",
             "latin1": root / "latin1.txt", "nested": root / "nested.json", "cwd": root / "a" / "b"}
    paths["empty_dir"].mkdir()
    paths["cwd"].mkdir(parents=True)
    paths["empty_file"].write_text("")
    paths["binary"].write_bytes(bytes(range(256)) * 8)
    paths["latin1"].write_bytes("caf\xe9 na\xefve\n".encode("latin-1"))
    paths["nested"].write_text("[" * 5000 + "]" * 5000)  # deeper than the recursion limit
    return {k: str(v) for k, v in paths.items()}


def bad_values(sb: dict[str, str]) -> list[str]:
    """The family fed to every option."""
    return ["-1", "0", "-1000", "inf", "-inf", "nan", "1e308", "99999999999999999999", "", " ",
            sb["empty_dir"], sb["binary"], sb["latin1"], sb["nested"], "a\x00b", "../../x", "x\x1b[2J"]


def _typename(a: argparse.Action) -> str:
    return getattr(a.type, "__name__", "") if a.type else ""


def _good(a: argparse.Action, sb: dict[str, str], n: int) -> str:
    """A value that parses but makes the command fail fast (nothing to read)."""
    if a.choices:
        return sorted(a.choices)[0]
    t = _typename(a)
    if t in ("existing_dir", "existing_path", "model_ref"):
        return sb["empty_dir"]
    if t in ("existing_file", "text_file"):
        return sb["empty_file"]
    if t in ("output_dir", "output_file"):
        return os.path.join(sb["empty_dir"], "..", f"out{n}")
    if "int" in t or t in ("jobs", "threads", "seed", "port", "sample_rate"):
        return "1" if t != "sample_rate" else "16000"
    if "float" in t or t == "probability":
        return "0.5"
    return "x"


def _argv(prefix, p, sb, tested: argparse.Action | None, bad: str | None) -> list[str]:
    skip = set()
    if tested is not None:
        skip.add(tested.dest)
        for g in p._mutually_exclusive_groups:
            if tested in g._group_actions:
                skip |= {a.dest for a in g._group_actions}
    argv, positionals = list(prefix), []
    required_groups = [g for g in p._mutually_exclusive_groups if g.required]
    for a in _options(p):
        in_group = next((g for g in required_groups if a in g._group_actions), None)
        if a is tested:
            vals = [bad] * (a.nargs if isinstance(a.nargs, int) else 1)
        elif a.dest in skip:
            continue
        elif (a.required and a.nargs not in ("*", "?")) or (in_group is not None and a is in_group._group_actions[0]) or (
                not a.option_strings and a.nargs in (None, 1, 2)):
            vals = [_good(a, sb, len(argv))] * (a.nargs if isinstance(a.nargs, int) else 1)
        elif a.dest == "text" and prefix == ["synth"]:
            vals = ["hello"]  # synth would otherwise read stdin
        else:
            continue
        if a.option_strings:
            argv += [a.option_strings[-1], *vals]
        else:
            positionals += vals
    return argv + positionals


def _stop(*_a, **_k):
    raise SpeechkdError("stopped by the argument walk before real work")


@pytest.fixture
def no_real_work(monkeypatch, sandbox):
    """Entry points that would generate a corpus, time benchmarks or serve forever stop at once."""
    import speechkd.bench.cli as bench_cli
    import speechkd.corpora.cli as corpora_cli
    import speechkd.listen.serve as serve

    monkeypatch.setattr(corpora_cli, "CORPORA", {k: _stop for k in corpora_cli.CORPORA})
    monkeypatch.setattr(serve, "make_server", _stop)
    for module, _ in bench_cli.SUITES.values():
        monkeypatch.setattr(sys.modules.get(module) or __import__(module, fromlist=["run"]), "run", _stop)
    monkeypatch.chdir(sandbox["cwd"])
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))


class CaseTimeout(BaseException):
    pass


def _timeout(*_):
    raise CaseTimeout("the command ran for more than CASE_SECONDS: it started real work")


CASE_SECONDS = 20


def run_case(argv: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    old = signal.signal(signal.SIGALRM, _timeout)
    signal.alarm(CASE_SECONDS)
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                code = cli.main(argv)
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else 2
            except BaseException as e:  # noqa: BLE001 - the point: nothing may escape
                import traceback

                return -1, "Traceback (escaped main)\n" + "".join(traceback.format_exception(e))
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    return code, err.getvalue()


def _cases(sb):
    for prefix, p in LEAVES:
        for a in _options(p):
            for bad in bad_values(sb):
                yield prefix, p, a, bad


def test_walk_every_verb_option_and_bad_value(sandbox, no_real_work, capsys):
    failures, n, verbs, options = [], 0, set(), set()
    t0 = time.perf_counter()
    for prefix, p, a, bad in _cases(sandbox):
        argv = _argv(prefix, p, sandbox, a, bad)
        t1 = time.perf_counter()
        code, err = run_case(argv)
        if os.environ.get("SPEECHKD_WALK_TRACE"):
            print(f"{time.perf_counter() - t1:6.2f}s exit {code} {argv!r} -> {err.strip().splitlines()[-1:]!r}",
                  file=sys.__stderr__, flush=True)
        n += 1
        verbs.add(prefix[0])
        options.add((tuple(prefix), a.dest))
        if code not in (0, 1, 2) or "Traceback" in err:
            failures.append(f"{argv!r}: exit {code}\n{err[-1500:]}")
    values = len(bad_values(sandbox))
    with capsys.disabled():
        print(f"\nargument walk: {len(verbs)} verbs, {len(LEAVES)} commands, {len(options)} options x "
              f"{values} bad values = {n} cases in {time.perf_counter() - t0:.1f} s, {len(failures)} failures")
    assert verbs == set(cli.VERBS)
    assert not failures, f"{len(failures)} failing cases, e.g.:\n" + "\n\n".join(failures[:5])


def test_numeric_options_refuse_non_finite_and_negative(sandbox, no_real_work):
    """Every option typed by a numeric validator refuses inf, nan and -1000 at parse time (exit 2)."""
    checked = 0
    for prefix, p in LEAVES:
        for a in _options(p):
            t = _typename(a)
            if not ("int" in t or "float" in t or t in ("jobs", "threads", "seed", "port", "probability",
                                                        "sample_rate")):
                continue
            for bad in ("inf", "nan", "-1000"):
                code, err = run_case(_argv(prefix, p, sandbox, a, bad))
                assert code == 2 and "Traceback" not in err and "argument" in err, (prefix, a.dest, bad, err)
                checked += 1
    assert checked > 100


def test_every_numeric_option_has_a_validator():
    """A plain ``type=int``/``type=float`` lets inf, nan and negatives through: every verb uses
    speechkd.utils.args instead."""
    plain = [(p.prog, a.dest) for _, p in LEAVES for a in _options(p) if a.type in (int, float)]
    assert not plain, plain


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_values_never_traceback(data, sandbox, no_real_work):
    """Random strings, numbers and nested JSON on a random option of a random command."""
    prefix, p = data.draw(st.sampled_from(LEAVES))
    opts = _options(p)
    if not opts:
        return
    a = data.draw(st.sampled_from(opts))
    value = data.draw(st.one_of(
        st.text(min_size=0, max_size=30).filter(lambda s: not s.startswith("-") or s[1:2].isdigit()),
        st.floats(allow_nan=True, allow_infinity=True).map(repr),
        st.integers(min_value=-10**30, max_value=10**30).map(str),
        st.sampled_from(bad_values(sandbox)),
        st.recursive(st.integers() | st.text(max_size=5), lambda c: st.lists(c, max_size=3), max_leaves=20)
          .map(json.dumps)))
    code, err = run_case(_argv(prefix, p, sandbox, a, value))
    assert code in (0, 1, 2) and "Traceback" not in err, (prefix, a.dest, value, err[-1500:])
