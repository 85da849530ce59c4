"""Typed configs: YAML + dotted overrides, strict keys and types, readable errors."""

from __future__ import annotations

import dataclasses

import pytest

from speechkd.config import dump_config, field, from_dict, load_config, parse_overrides
from speechkd.errors import ConfigError


@dataclasses.dataclass
class Inner:
    hidden: int = field(256, help="hidden size")
    dropout: float = field(0.1, help="dropout probability")


@dataclasses.dataclass
class Outer:
    name: str = field("model", help="a name")
    use_cache: bool = field(True, help="a flag")
    layers: list[int] = field(default_factory=lambda: [1, 2], help="a list")
    inner: Inner = field(default_factory=Inner, help="nested")
    opt: int | None = field(None, help="optional")


def test_defaults_yaml_and_overrides(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("# comment\nname: big\ninner:\n  hidden: 384\n")
    cfg = load_config(Outer, p, ["inner.dropout=0.2", "use_cache=false", "opt=3"])
    assert cfg.name == "big" and cfg.inner.hidden == 384 and cfg.inner.dropout == 0.2
    assert cfg.use_cache is False and cfg.opt == 3 and cfg.layers == [1, 2]


def test_unknown_key_names_file_and_key(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("inner:\n  hiden: 3\n")
    with pytest.raises(ConfigError) as e:
        load_config(Outer, p)
    assert "inner.hiden" in str(e.value) and str(p) in str(e.value)


def test_wrong_type_names_field():
    with pytest.raises(ConfigError) as e:
        from_dict(Outer, {"inner": {"hidden": "wide"}})
    assert "inner.hidden" in str(e.value) and "integer" in str(e.value)


def test_malformed_yaml_names_line(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("name: a\ninner:\n  hidden: [1, 2\n")
    with pytest.raises(ConfigError) as e:
        load_config(Outer, p)
    msg = str(e.value)
    assert "malformed YAML" in msg and "line" in msg and str(p) in msg


def test_missing_file_and_non_mapping(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(Outer, tmp_path / "nope.yaml")
    p = tmp_path / "list.yaml"
    p.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(Outer, p)


def test_bad_override_syntax():
    with pytest.raises(ConfigError, match="key.sub=value"):
        parse_overrides(["inner.hidden"])


def test_dump_round_trip_with_help(tmp_path):
    cfg = Outer(name="x", inner=Inner(hidden=7))
    text = dump_config(cfg)
    assert "# hidden size" in text
    p = tmp_path / "d.yaml"
    p.write_text(text)
    assert load_config(Outer, p) == cfg
