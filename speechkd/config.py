"""Typed configuration: dataclasses loaded from commented YAML with dotted overrides.

Every config is a (possibly nested) dataclass whose fields carry defaults and a
docstring-like ``metadata["help"]``. :func:`load_typed` merges, in order, the
dataclass defaults, a YAML file and ``key.sub=value`` overrides, and checks
every key, type and range, so a typo in a config is an error naming the file and the
field, never a silently ignored setting.

Ranges (checked for every value a YAML file or an override sets, before the dataclass is built):

- a float must be finite (NaN and inf are refused everywhere);
- a field may declare bounds, ``field(1e-3, gt=0.0)`` (``ge``, ``gt``, ``le``, ``lt``);
- otherwise the default implies the range: a number whose default is >= 0 must be >= 0; an
  integer whose default is negative (a sentinel such as ``-1: no limit``) must be >= it; an
  integer whose default is positive is a count or size and must be >= 1, unless its help says
  what 0 means (``"0: ..."``, ``"0 = ..."``).

A config class may define ``resolve_config(self, source)``: :func:`from_dict` calls it after
building the instance, to type fields that depend on others (``model_conf`` by ``model``) and to
check cross-field rules (raising :class:`~speechkd.errors.ConfigError`).
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from speechkd.errors import ConfigError
from speechkd.utils.io import atomic_write_text

T = TypeVar("T")


def field(default: Any = dataclasses.MISSING, *, help: str = "", default_factory: Any = dataclasses.MISSING,
          ge: float | None = None, gt: float | None = None, le: float | None = None, lt: float | None = None):
    """A dataclass field with a help string (shown by ``--print-config``) and optional bounds
    (``ge``/``gt``/``le``/``lt``; without them the default implies the range, see the module docstring)."""
    meta: dict[str, Any] = {"help": help}
    meta.update({k: v for k, v in (("ge", ge), ("gt", gt), ("le", le), ("lt", lt)) if v is not None})
    kw: dict[str, Any] = {"metadata": meta}
    if default_factory is not dataclasses.MISSING:
        kw["default_factory"] = default_factory
    else:
        kw["default"] = default
    return dataclasses.field(**kw)


def to_dict(cfg: Any) -> dict:
    """A plain dict (YAML-serialisable) of a config dataclass."""
    return dataclasses.asdict(cfg)


def _coerce(value: Any, tp: Any, where: str, source: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin is typing.Union or (origin is not None and str(origin) == "<class 'types.UnionType'>"):
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, where, source)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(f"value {value!r} matches none of {tp}", path=source, field=where)
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"expected a mapping, got {type(value).__name__} {value!r}",
                              path=source, field=where)
        return from_dict(tp, value, source=source, prefix=where + ".")
    if origin in (list, tuple) or tp in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"expected a list, got {value!r}", path=source, field=where)
        inner = args[0] if args else Any
        out = [_coerce(v, inner, f"{where}[{i}]", source) for i, v in enumerate(value)]
        return tuple(out) if (origin is tuple or tp is tuple) else out
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"expected a mapping, got {value!r}", path=source, field=where)
        return dict(value)
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"must be one of {list(args)}, got {value!r}", path=source, field=where)
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
        raise ConfigError(f"expected true/false, got {value!r}", path=source, field=where)
    if tp is int:
        if isinstance(value, bool):
            raise ConfigError(f"expected an integer, got {value!r}", path=source, field=where)
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        raise ConfigError(f"expected an integer, got {value!r}", path=source, field=where)
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(f"expected a number, got {value!r}", path=source, field=where)
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"expected a number, got {value!r}", path=source, field=where)
    if tp is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"expected a string, got {value!r}", path=source, field=where)
    return value


_ZERO_DOCUMENTED = re.compile(r"\b0\s*(:|=|\(|means)")


def field_range(f: dataclasses.Field) -> dict[str, float]:
    """The bounds of a numeric field: declared (``ge``/``gt``/``le``/``lt``) or implied by its default."""
    declared = {k: f.metadata[k] for k in ("ge", "gt", "le", "lt") if k in f.metadata}
    if declared:
        return declared
    d = f.default
    if isinstance(d, bool) or not isinstance(d, (int, float)):
        return {}
    if isinstance(d, int):
        if d < 0:
            return {"ge": d}
        return {"ge": 1} if d > 0 and not _ZERO_DOCUMENTED.search(f.metadata.get("help", "")) else {"ge": 0}
    return {"ge": 0.0} if d >= 0 else {}


def check_range(value: Any, f: dataclasses.Field, where: str, source: str) -> None:
    """Refuse a non-finite float or a number outside the field's range (one line naming both)."""
    values = value if isinstance(value, (list, tuple)) else [value]
    for v in values:
        if isinstance(v, float) and not math.isfinite(v):
            raise ConfigError(f"must be a finite number, got {v}", path=source, field=where)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    rng = field_range(f)
    ops = {"ge": (lambda a, b: a >= b, ">="), "gt": (lambda a, b: a > b, ">"),
           "le": (lambda a, b: a <= b, "<="), "lt": (lambda a, b: a < b, "<")}
    for k, bound in rng.items():
        if not ops[k][0](value, bound):
            allowed = " and ".join(f"{ops[j][1]} {b:g}" for j, b in rng.items())
            raise ConfigError(f"{value:g} is out of range: must be {allowed}", path=source, field=where,
                              hint=f.metadata.get("help") or None)


def _over_default(f: dataclasses.Field, value: Any) -> Any:
    """A mapping given for a nested config goes over the field's own default instance, so that a
    parent's defaults (``trainer`` of SE training: one thread) survive a YAML setting other keys."""
    if isinstance(value, dict) and f.default_factory is not dataclasses.MISSING:
        base = f.default_factory()
        if dataclasses.is_dataclass(base):
            return merge(to_dict(base), value)
    return value


def from_dict(cls: type[T], data: dict, *, source: str = "<dict>", prefix: str = "") -> T:
    """Build ``cls`` from a mapping, refusing unknown keys and wrong types."""
    if not isinstance(data, dict):
        raise ConfigError(f"expected a mapping, got {type(data).__name__}", path=source,
                          field=prefix.rstrip(".") or None)
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"unknown key(s) {', '.join(prefix + u for u in unknown)}; "
                          f"known: {', '.join(sorted(fields))}", path=source)
    data = {k: _over_default(fields[k], v) for k, v in data.items()}
    kwargs = {k: _coerce(v, hints[k], prefix + k, source) for k, v in data.items()}
    for k, v in kwargs.items():
        check_range(v, fields[k], prefix + k, source)
    try:
        cfg = cls(**kwargs)
    except (TypeError, ValueError, ZeroDivisionError) as e:
        raise ConfigError(str(e), path=source, field=prefix.rstrip(".") or None) from None
    resolve = getattr(cfg, "resolve_config", None)
    if callable(resolve):
        resolve(source)
    return cfg


def parse_overrides(overrides: list[str]) -> dict:
    """``["a.b=3", "c=x"]`` -> ``{"a": {"b": 3}, "c": "x"}`` (values parsed as YAML scalars)."""
    out: dict = {}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key.sub=value", field=item)
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError:
            value = raw
        node = out
        parts = key.strip().split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    return out


def merge(base: dict, upd: dict) -> dict:
    """``upd`` over ``base``, recursively for nested mappings (neither is modified)."""
    out = dict(base)
    for k, v in upd.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = v
    return out


def read_yaml(path: str | os.PathLike) -> dict:
    """Read a YAML mapping with errors that name the file and line."""
    path = Path(path)
    if not path.exists():
        raise ConfigError("config file does not exist", path=str(path))
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        loc = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"malformed YAML{loc}: {problem}", path=str(path),
                          hint="fix the syntax (indentation, quotes, colons)") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"top level must be a mapping, got {type(data).__name__}", path=str(path))
    return data


def load_typed(cls: type[T], path: str | os.PathLike | None = None, overrides: list[str] | None = None) -> T:
    """Defaults <- YAML file ``path`` <- dotted ``overrides`` (``["trainer.max_steps=5"]``); every
    key, type and range checked, then the class's ``resolve_config``. The one loader of every config."""
    data = read_yaml(path) if path else {}
    if overrides:
        data = merge(data, parse_overrides(overrides))
    # an error names the file, and says when overrides (or CLI flags) may have set the value
    source = (f"{path} + overrides" if overrides else str(path)) if path else "<overrides>"
    return from_dict(cls, data, source=source)


load_config = load_typed  # the earlier name


def config_changes(old: Any, new: Any) -> list[str]:
    """Dotted names of the leaves that differ between two configs (dataclasses or dicts)."""
    def flat(d: Any, prefix: str = "") -> dict[str, Any]:
        if isinstance(d, dict):
            out: dict[str, Any] = {}
            for k, v in d.items():
                out.update(flat(v, f"{prefix}{k}."))
            return out
        return {prefix[:-1]: d}

    a = flat(to_dict(old) if dataclasses.is_dataclass(old) else old)
    b = flat(to_dict(new) if dataclasses.is_dataclass(new) else new)
    return sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))


def dump_config(cfg: Any, with_help: bool = True) -> str:
    """YAML text of a config, each field preceded by its help as a comment."""
    if not with_help:
        return yaml.safe_dump(to_dict(cfg), sort_keys=False)
    lines: list[str] = []

    def emit(obj: Any, indent: str) -> None:
        for f in dataclasses.fields(obj):
            v = getattr(obj, f.name)
            h = f.metadata.get("help", "")
            if h:
                lines.append(f"{indent}# {h}")
            if dataclasses.is_dataclass(v):
                lines.append(f"{indent}{f.name}:")
                emit(v, indent + "  ")
            else:
                value = yaml.safe_dump(v, default_flow_style=True, width=10_000).strip()
                value = value.removesuffix("...").strip()  # document-end marker of bare scalars
                lines.append(f"{indent}{f.name}: {value}")

    emit(cfg, "")
    return "\n".join(lines) + "\n"


def save_config(cfg: Any, path: str | os.PathLike) -> None:
    atomic_write_text(path, dump_config(cfg))
