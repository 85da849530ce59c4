"""Split and subset Kaldi data dirs (Kaldi's ``split_data.sh --per-utt``, ``subset_data_dir.sh``).

Every function refuses a dir that does not validate (audio is not read), so a
split never spreads a broken utterance over parallel jobs.
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Iterable

from speechkd.data.kaldi import DataDir, read_datadir, sort_key
from speechkd.data.validate import validate_datadir, write_new_datadir
from speechkd.errors import DataDirError

logger = logging.getLogger(__name__)


def read_valid(path: str | os.PathLike) -> DataDir:
    """Read a data dir that passes :func:`validate_datadir` (without audio), else DataDirError."""
    report = validate_datadir(path, check_audio=False)
    if not report.ok:
        first = report.errors[0]
        raise DataDirError(f"{first.message} ({len(report.errors)} errors in all)", path=first.file,
                           utt=first.utt, field=first.field,
                           hint="run `speechkd data validate` to see them, `speechkd data fix` to repair")
    return read_datadir(path)


def chunk_sizes(total: int, n: int) -> list[int]:
    """Sizes of ``n`` balanced contiguous chunks (the first ``total % n`` one larger)."""
    base, extra = divmod(total, n)
    return [base + (i < extra) for i in range(n)]


def split_datadir(path: str | os.PathLike, n: int, out_root: str | os.PathLike | None = None, *,
                  overwrite: bool = False) -> list[str]:
    """Split into ``out_root/1 .. out_root/n`` (default ``<path>/split<n>``): contiguous,
    balanced chunks of the C-sorted utterances, each a complete data dir. Returns the dirs."""
    dd = read_valid(path)
    utts = dd.utts
    if not 1 <= n <= len(utts):
        raise DataDirError(f"cannot split {len(utts)} utterances into {n} parts", path=str(path),
                           hint="use 1 <= --num <= the number of utterances")
    out_root = str(out_root) if out_root is not None else os.path.join(str(path), f"split{n}")
    dirs, start = [], 0
    for i, size in enumerate(chunk_sizes(len(utts), n), 1):
        d = os.path.join(out_root, str(i))
        write_new_datadir(path, d, dd.subset(utts[start:start + size]), overwrite=overwrite)
        dirs.append(d)
        start += size
    logger.info("split %d utterances of %s into %s/{1..%d}", len(utts), path, out_root, n)
    return dirs


def split_by_ratio(path: str | os.PathLike, parts: dict[str, float], out_root: str | os.PathLike,
                   *, seed: int = 0, overwrite: bool = False) -> dict[str, str]:
    """Shuffle utterances (seeded) and write ``out_root/<name>`` for each part, sized by its
    ratio (ratios are normalised; largest remainders get the leftovers). Returns name -> dir."""
    if not parts or any(r <= 0 for r in parts.values()):
        raise DataDirError(f"ratios must be positive, got {parts}", path=str(path))
    dd = read_valid(path)
    utts = dd.utts
    random.Random(seed).shuffle(utts)
    total_ratio = sum(parts.values())
    exact = {k: len(utts) * r / total_ratio for k, r in parts.items()}
    sizes = {k: int(v) for k, v in exact.items()}
    by_remainder = sorted(parts, key=lambda k: exact[k] - sizes[k], reverse=True)
    for k in by_remainder[:len(utts) - sum(sizes.values())]:
        sizes[k] += 1
    empty = [k for k, s in sizes.items() if s == 0]
    if empty:
        raise DataDirError(f"part(s) {', '.join(empty)} would get no utterances out of {len(utts)}",
                           path=str(path), hint="use larger ratios or a bigger data dir")
    out, start = {}, 0
    for name, size in sizes.items():
        out[name] = os.path.join(str(out_root), name)
        write_new_datadir(path, out[name], dd.subset(utts[start:start + size]), overwrite=overwrite)
        start += size
    logger.info("split %s by ratio: %s", path, ", ".join(f"{k} {s}" for k, s in sizes.items()))
    return out


def subset_datadir(path: str | os.PathLike, out: str | os.PathLike, *, first: int | None = None,
                   last: int | None = None, utts: Iterable[str] | None = None, overwrite: bool = False) -> int:
    """Write the first/last ``k`` utterances (C order) or those listed in ``utts`` to ``out``.
    Listed ids absent from the dir are skipped with a warning. Returns the number written."""
    if sum(x is not None for x in (first, last, utts)) != 1:
        raise DataDirError("give exactly one of first, last or an utterance list", path=str(path))
    dd = read_valid(path)
    all_utts = dd.utts
    if utts is not None:
        wanted = set(utts)
        chosen = [u for u in all_utts if u in wanted]
        missing = sorted(wanted - set(chosen), key=sort_key)
        if missing:
            logger.warning("%d listed utterance(s) are not in %s, e.g. '%s'", len(missing), path, missing[0])
    else:
        k = first if first is not None else last
        if not 1 <= k <= len(all_utts):
            raise DataDirError(f"cannot take {k} of {len(all_utts)} utterances", path=str(path))
        chosen = all_utts[:k] if first is not None else all_utts[-k:]
    if not chosen:
        raise DataDirError("no listed utterance is in the data dir", path=str(path),
                           hint="check the ids in the list (first field of each line)")
    write_new_datadir(path, out, dd.subset(chosen), overwrite=overwrite)
    logger.info("wrote %d of %d utterances of %s to %s", len(chosen), len(all_utts), path, out)
    return len(chosen)
