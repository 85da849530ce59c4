"""Shared fixtures: tiny generated audio and Kaldi data dirs (no downloads, milliseconds to make)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

SR = 16000


def write_wav(path: Path, *, seconds: float = 0.25, sr: int = SR, channels: int = 1,
              kind: str = "sine", seed: int = 0) -> Path:
    """A short 16-bit wav: a sine (``kind="sine"``) or seeded white noise."""
    n = int(round(seconds * sr))
    if kind == "sine":
        wav = 0.3 * np.sin(2 * np.pi * (220 + 40 * seed) * np.arange(n) / sr)
    else:
        wav = 0.1 * np.random.default_rng(seed).standard_normal(n)
    wav = np.repeat(wav[:, None], channels, axis=1).astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, wav, sr, subtype="PCM_16")
    return path


@pytest.fixture
def one_thread():
    """One torch thread: on a shared 2-core machine a second thread only spins (~30x slower)."""
    import torch  # imports torch: only for the modules that use it

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def tiny_datadir(tmp_path: Path) -> Path:
    """A valid data dir ``tmp_path/data`` of 6 utterances (0.25 s each at 16 kHz, alternating
    sine and noise) by speakers spkA and spkB; the wavs live in ``tmp_path/wav``."""
    data = tmp_path / "data"
    data.mkdir()
    rows = []
    for i in range(6):
        spk = "spkA" if i < 3 else "spkB"
        utt = f"{spk}_{i:03d}"
        wav = write_wav(tmp_path / "wav" / f"{utt}.wav", kind="sine" if i % 2 == 0 else "noise", seed=i)
        rows.append((utt, spk, f"sentence number {i}", str(wav)))
    (data / "wav.scp").write_text("".join(f"{u} {w}\n" for u, _, _, w in rows))
    (data / "text").write_text("".join(f"{u} {t}\n" for u, _, t, _ in rows))
    (data / "utt2spk").write_text("".join(f"{u} {s}\n" for u, s, _, _ in rows))
    (data / "spk2utt").write_text(
        "".join(f"{s} {' '.join(u for u, s2, _, _ in rows if s2 == s)}\n" for s in ("spkA", "spkB")))
    return data


@pytest.fixture(scope="session")
def exported(tmp_path_factory) -> dict[str, Path]:
    """Tiny students and a vocoder exported to ONNX once per session, for the export and serve tests
    (``tests/export_fixtures.py``; here so that both modules share one export)."""
    from export_fixtures import export_all  # imports torch: only for the tests that use it

    return export_all(tmp_path_factory.mktemp("export"))


# Under pytest-xdist (`make test` runs `pytest -n auto --dist loadgroup`): each module goes whole to
# one worker, so its module-scoped fixtures are made once; the export, serve and SE-deploy modules share
# a worker, as they share the session's export above. The recipe modules are the exception: their
# fixtures are cheap and each of their tests runs a whole recipe for minutes, so those tests go one by
# one to whichever worker is free (one group each would leave a worker idle at the end).
SHARED_WORKER = {"test_serve": "test_export", "test_se_deploy": "test_export"}
SPREAD = {"test_public_corpora", "test_recipe_smoke", "test_se_recipe"}


# tryfirst: xdist's own hook turns the marker into the node id's "@group" suffix that loadgroup
# schedules by; a marker added after it is never seen (every test would then be its own group)
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    def module(item) -> str:
        return item.nodeid.split("::")[0].rsplit("/", 1)[-1].removesuffix(".py")

    for item in items:
        if module(item) not in SPREAD:
            item.add_marker(pytest.mark.xdist_group(SHARED_WORKER.get(module(item), module(item))))
    items.sort(key=lambda item: module(item) not in SPREAD)  # stable: the order within each part stays


def pytest_configure(config):
    if hasattr(config.option, "loadscopereorder"):
        config.option.loadscopereorder = False  # keep the order above (xdist's controller schedules by it)
    if os.environ.get("PYTEST_XDIST_WORKER"):
        # two workers on two cores: one torch thread each (and in the CLIs they start), not two each
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        import torch

        torch.set_num_threads(1)

