"""Argparse ``type=`` validators shared by every verb.

A bad value is refused by the parser itself: one line naming the option, the value and the
allowed range, and exit status 2 (argparse's usage error), before any work starts. Each factory
returns a callable whose ``__name__`` argparse shows in its messages.

Paths are checked for their KIND only (a file where a file is expected, a directory where a
directory is expected, text that decodes as UTF-8); whether the content is usable is the job of
the reader, which raises :class:`speechkd.errors.SpeechkdError`.
"""

from __future__ import annotations

import argparse
import math
import os
import re
from typing import Callable

from speechkd.utils.paths import id_problem

# Notes appended to the --help of verbs that read a data dir's audio.
RUNS_PIPES = ("Audio is read through wav.scp: its 'cmd |' entries (Kaldi extended filenames) are run as "
              "shell commands, so only use data dirs you trust (`speechkd data validate` runs none).")

MAX_JOBS = 4096  # --nj / --threads: more is a typo, and would fork that many processes
_TEXT_CHECK_BYTES = 64 << 20  # decode text files up to this size at parse time


def _err(msg: str) -> argparse.ArgumentTypeError:
    return argparse.ArgumentTypeError(msg)


def _named(fn: Callable, name: str) -> Callable:
    fn.__name__ = name
    return fn


def int_range(lo: int | None = None, hi: int | None = None, name: str | None = None) -> Callable[[str], int]:
    """An integer in ``[lo, hi]`` (either bound may be open)."""
    def parse(text: str) -> int:
        try:
            v = int(text.strip())
        except (ValueError, AttributeError):
            raise _err(f"expected an integer, got {text!r}") from None
        if lo is not None and v < lo:
            raise _err(f"must be >= {lo}, got {v}")
        if hi is not None and v > hi:
            raise _err(f"must be <= {hi}, got {v}")
        return v
    return _named(parse, name or f"int[{lo},{hi}]")


positive_int = int_range(1, name="positive_int")
nonneg_int = int_range(0, name="nonneg_int")
jobs = int_range(1, MAX_JOBS, name="jobs")          # --nj: parallel processes
threads = int_range(0, MAX_JOBS, name="threads")    # torch threads; 0 = the library's default
seed = int_range(0, 2**32 - 1, name="seed")         # numpy's seed range
port = int_range(0, 65535, name="port")             # 0: any free port


def finite_float(lo: float | None = None, hi: float | None = None, *, lo_open: bool = False,
                 hi_open: bool = False, name: str | None = None) -> Callable[[str], float]:
    """A finite float (never NaN or +-inf) in ``[lo, hi]``; ``lo_open``/``hi_open`` exclude a bound."""
    def parse(text: str) -> float:
        try:
            v = float(text)
        except (ValueError, TypeError):
            raise _err(f"expected a number, got {text!r}") from None
        if not math.isfinite(v):
            raise _err(f"must be a finite number, got {text!r}")
        if lo is not None and (v < lo or (lo_open and v == lo)):
            raise _err(f"must be {'>' if lo_open else '>='} {lo:g}, got {v:g}")
        if hi is not None and (v > hi or (hi_open and v == hi)):
            raise _err(f"must be {'<' if hi_open else '<='} {hi:g}, got {v:g}")
        return v
    return _named(parse, name or "finite_float")


positive_float = finite_float(0.0, lo_open=True, name="positive_float")
nonneg_float = finite_float(0.0, name="nonneg_float")
probability = finite_float(0.0, 1.0, name="probability")

_DEVICE = re.compile(r"^(auto|cpu|cuda(:\d{1,3})?|mps)$")


def device(text: str) -> str:
    """auto, cpu, cuda, cuda:N or mps (whether it exists is checked when the model is loaded)."""
    if not _DEVICE.match(text or ""):
        raise _err(f"unknown device {text!r}: use auto, cpu, cuda, cuda:N or mps")
    return text


def _nonempty(text: str) -> str:
    if not text or not text.strip():
        raise _err("empty path")
    if "\x00" in text:
        raise _err("a NUL character in the path")
    return text


def existing_file(text: str) -> str:
    """A path to an existing file (not a directory)."""
    _nonempty(text)
    if os.path.isdir(text):
        raise _err(f"{text!r} is a directory, expected a file")
    if not os.path.exists(text):
        raise _err(f"{text!r} does not exist")
    return text


def text_file(text: str) -> str:
    """An existing file that decodes as UTF-8 text ('-' is stdin, checked when read)."""
    if text == "-":
        return text
    existing_file(text)
    try:
        if os.path.getsize(text) <= _TEXT_CHECK_BYTES:
            with open(text, encoding="utf-8") as f:
                data = f.read()
            if "\x00" in data:
                raise _err(f"{text!r} holds NUL bytes: a binary file, expected text")
    except UnicodeDecodeError as e:
        raise _err(f"{text!r} is not UTF-8 text (byte {e.start}); convert it to UTF-8") from None
    except OSError as e:
        raise _err(f"cannot read {text!r} ({e.strerror})") from None
    return text


def existing_dir(text: str) -> str:
    """A path to an existing directory."""
    _nonempty(text)
    if not os.path.exists(text):
        raise _err(f"{text!r} does not exist")
    if not os.path.isdir(text):
        raise _err(f"{text!r} is a file, expected a directory")
    return text


def existing_path(text: str) -> str:
    """An existing file or directory (e.g. an exp dir or one of its .ckpt files)."""
    _nonempty(text)
    if not os.path.exists(text):
        raise _err(f"{text!r} does not exist")
    return text


def output_file(text: str) -> str:
    """A file to write: not an existing directory, and not below an existing file."""
    _nonempty(text)
    if os.path.isdir(text) or text.endswith(os.sep):
        raise _err(f"{text!r} is a directory, expected a file path")
    _parent_not_file(text)
    return text


def output_dir(text: str) -> str:
    """A directory to write into (created when absent): not an existing file."""
    _nonempty(text)
    if os.path.exists(text) and not os.path.isdir(text):
        raise _err(f"{text!r} is a file, expected a directory")
    _parent_not_file(text)
    return text


def _parent_not_file(text: str) -> None:
    parent = os.path.dirname(os.path.abspath(text))
    while parent and not os.path.exists(parent):
        parent = os.path.dirname(parent) if os.path.dirname(parent) != parent else ""
    if parent and not os.path.isdir(parent):
        raise _err(f"{parent!r} is a file, so {text!r} cannot be created below it")


def nonempty_str(text: str) -> str:
    """A non-empty string without NUL or control characters (titles, names)."""
    if not text or not text.strip():
        raise _err("empty value")
    if any(ord(c) < 32 and c not in "\t" for c in text):
        raise _err(f"control characters in {text!r}")
    return text


sample_rate = int_range(1000, 384000, name="sample_rate")


def sample_rate_or_0(text: str) -> int:
    """A sample rate, or 0 for "the data's own rate"."""
    return 0 if text.strip() == "0" else sample_rate(text)


def name(text: str) -> str:
    """A plain name used as one path component (a split such as ``train``): no separators or ``..``."""
    problem = id_problem(text)
    if problem:
        raise _err(f"{text!r} is not a plain name: {problem}")
    return text


def model_ref(text: str) -> str:
    """``builtin:NAME`` or an existing exp dir / checkpoint file."""
    return text if text.startswith("builtin:") else existing_path(text)


ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps")
PRECISIONS = ("32-true", "32", "16-mixed", "bf16-mixed", "16-true", "bf16-true", "64-true", "64", "16", "bf16")


def accelerator(text: str) -> str:
    """A Lightning accelerator this toolkit runs on: auto, cpu, gpu, cuda or mps."""
    if text not in ACCELERATORS:
        raise _err(f"unknown accelerator {text!r}: use one of {', '.join(ACCELERATORS)}")
    return text


def precision(text: str) -> str:
    """A Lightning precision: 32-true, 16-mixed, bf16-mixed, ..."""
    if text not in PRECISIONS:
        raise _err(f"unknown precision {text!r}: use one of {', '.join(PRECISIONS)}")
    return text


def devices(text: str) -> str:
    """Lightning devices: auto, a count N >= 1, -1 (all), or a comma list of device indices 0,1."""
    t = text.strip()
    if t in ("auto", "-1") or re.fullmatch(r"[1-9]\d{0,3}", t) or re.fullmatch(r"\d{1,3}(,\d{1,3})*,?", t):
        return t
    raise _err(f"bad devices {text!r}: use auto, a count (e.g. 2), -1 (all) or a list of indices (e.g. 0,1)")


def existing_file_or_stdin(text: str) -> str:
    """``-`` (standard input) or a path to an existing file."""
    return text if text == "-" else existing_file(text)
