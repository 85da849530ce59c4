"""Imports point one way: every internal import (module level and inside functions) of the
installed package goes from a higher layer to a lower one or within a package, packages of one
layer form no cycle, and inference never imports Lightning."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

import speechkd
from speechkd.enhance.models import SE_MODELS, SEModel
from speechkd.features.config import FeatureConfig
from speechkd.models import MODELS, AcousticModel
from speechkd.models.vocoders import GENERATORS, VOCODERS, Vocoder
from speechkd.models.vocoders.vocos import Vocos

# Lowest first. A package may import its own layer's packages (no cycles) and lower ones.
LAYERS: list[set[str]] = [
    {"", "errors", "config", "utils", "audio"},  # "": speechkd/__init__.py
    {"data", "text", "features", "corpora"},
    {"runtime"},  # exported models on onnxruntime and numpy: no torch below it
    {"align"},
    {"models"},
    {"checkpoints"},
    {"train", "infer"},
    {"distill"},
    {"enhance"},
    {"export"},  # export: trained TTS and SE models -> ONNX (uses infer's frontend resolution, enhance's loader)
    {"eval", "listen", "bench", "testing"},  # testing: replicas of published corpora for tests and users
    {"cli"},
]
LAYER = {pkg: i for i, layer in enumerate(LAYERS) for pkg in layer}
SIBLINGS = [{"train", "infer"}]  # same layer, and neither imports the other
ROOT = Path(speechkd.__file__).parent


def package_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def internal_imports() -> list[tuple[str, str, int, bool, str]]:
    """(importing module, imported module, line, inside a function, source line) of every import of
    ``speechkd.*`` in the installed package (relative imports resolved)."""
    out = []
    for path in sorted(ROOT.rglob("*.py")):
        mod = module_name(path)
        src = path.read_text(encoding="utf-8")
        lines = src.splitlines()
        is_pkg = path.name == "__init__.py"

        def visit(node: ast.AST, in_fn: bool) -> None:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.Import):
                    targets = [a.name for a in child.names]
                elif isinstance(child, ast.ImportFrom):
                    if child.level:
                        base = mod.split(".") if is_pkg else mod.split(".")[:-1]
                        base = base[:len(base) - (child.level - 1)]
                        targets = [".".join(base + ([child.module] if child.module else []))]
                    else:
                        targets = [child.module or ""]
                else:
                    targets = []
                for t in targets:
                    if t == "speechkd" or t.startswith("speechkd."):
                        out.append((mod, t, child.lineno, in_fn, lines[child.lineno - 2:child.lineno]))
                visit(child, in_fn or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))

        visit(ast.parse(src, filename=str(path)), False)
    return out


IMPORTS = internal_imports()


def test_every_package_has_a_layer():
    pkgs = {package_of(m) for m, *_ in IMPORTS} | {package_of(t) for _, t, *_ in IMPORTS}
    assert not pkgs - set(LAYER), f"packages without a layer in tests/test_layers.py: {pkgs - set(LAYER)}"


def test_no_upward_or_sibling_imports():
    bad = []
    for mod, target, line, _, _ in IMPORTS:
        a, b = package_of(mod), package_of(target)
        if a == b:
            continue
        if LAYER[b] > LAYER[a] or any({a, b} <= s for s in SIBLINGS):
            bad.append(f"{mod}:{line} imports {target} ({a} is below {b} in the layer order)"
                       if LAYER[b] > LAYER[a] else f"{mod}:{line} imports {target} (siblings {a} and {b})")
    assert not bad, "imports pointing up:\n" + "\n".join(bad)


def test_no_cycles_between_packages():
    edges: dict[str, dict[str, str]] = {}
    for mod, target, line, _, _ in IMPORTS:
        a, b = package_of(mod), package_of(target)
        if a != b:
            edges.setdefault(a, {}).setdefault(b, f"{mod}:{line} imports {target}")
    # depth-first search for a back edge
    state: dict[str, int] = {}
    stack: list[str] = []

    def dfs(u: str) -> list[str] | None:
        state[u] = 1
        stack.append(u)
        for v in edges.get(u, {}):
            if state.get(v) == 1:
                cyc = stack[stack.index(v):] + [v]
                return [edges[x][y] for x, y in zip(cyc, cyc[1:])]
            if v not in state:
                found = dfs(v)
                if found:
                    return found
        stack.pop()
        state[u] = 2
        return None

    for u in sorted(edges):
        if u not in state:
            cycle = dfs(u)
            assert cycle is None, "import cycle between packages:\n" + "\n".join(cycle)


def test_function_level_imports_say_why():
    """Internal imports inside functions are for optional heavy dependencies only, each with a
    ``# why`` comment on its line or the line above."""
    bad = [f"{mod}:{line} imports {target}" for mod, target, line, in_fn, src in IMPORTS
           if in_fn and not any("# why" in s for s in src)]
    assert not bad, "function-level imports without a '# why' comment:\n" + "\n".join(bad)


def test_the_layer_test_sees_an_upward_edge(tmp_path, monkeypatch):
    """The checker itself: an upward import written into a copy of a module is reported."""
    fake = tmp_path / "speechkd"
    (fake / "models").mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (fake / "models" / "__init__.py").write_text("def f():\n    from speechkd.train.exp import x\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", fake)
    found = internal_imports()
    assert found == [("speechkd.models", "speechkd.train.exp", 2, True,
                      ["def f():", "    from speechkd.train.exp import x"])]
    monkeypatch.setattr(sys.modules[__name__], "IMPORTS", found)
    with pytest.raises(AssertionError, match=r"speechkd.models:2 imports speechkd.train.exp"):
        test_no_upward_or_sibling_imports()


def test_registered_classes_satisfy_their_protocols():
    fc = FeatureConfig()
    for name, cls in MODELS.items():
        model = cls(cls.Config(), n_vocab=10, n_mels=fc.n_mels)
        assert isinstance(model, AcousticModel), name
    for name, cls in SE_MODELS.items():
        assert isinstance(cls(cls.Config()), SEModel), name
    for name, (gen_cls, cfg_cls) in GENERATORS.items():
        assert isinstance(Vocos(gen_cls(cfg_cls(), fc), fc), Vocoder), name
    for name, (cls, cfg_cls) in VOCODERS.items():
        assert isinstance(cls(fc, cfg_cls()), Vocoder), name


# The verbs that train (Lightning's Trainer) or build a Lightning data module; every other verb's
# module starts without importing Lightning (it costs seconds at every recipe stage).
TRAINING_VERBS = {"train", "train-vocoder", "distill", "predict-mels"}


def test_inference_imports_no_lightning():
    """Importing every inference entry point, and the module of every verb that does not train,
    leaves Lightning out of sys.modules."""
    from speechkd.cli import VERBS

    light = sorted(module for verb, (module, _) in VERBS.items() if verb not in TRAINING_VERBS)
    assert "speechkd.eval.cli" in light and "speechkd.distill.teacher_dump_cli" in light
    code = ("import sys\n"
            "import speechkd.infer.cli_synth, speechkd.infer.synthesize, speechkd.infer.cli_vocode, "
            "speechkd.infer.vocode, speechkd.checkpoints, speechkd.enhance.enhance_cli, speechkd.enhance.infer, "
            + ", ".join(light) + "\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('lightning', 'pytorch_lightning'))\n"
            "print(','.join(bad))\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT.parent) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "", f"inference imported {res.stdout.strip()}"
