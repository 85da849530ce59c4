"""PNG plots of training (matplotlib, Agg backend; written atomically)."""

from __future__ import annotations

import os

import numpy as np

from speechkd.utils.io import atomic_open


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str) -> None:
    plt = _plt()
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)


def plot_matrices(arrays: dict[str, np.ndarray], path: str, title: str = "") -> None:
    """One panel per array. Names starting with "mel" are ``[T, n_mels]`` (shown bins x frames);
    others ``[rows, cols]`` as given (attention: tokens x decoder steps)."""
    plt = _plt()
    fig, axes = plt.subplots(len(arrays), 1, figsize=(10, 2.6 * len(arrays)), squeeze=False)
    for ax, (name, a) in zip(axes[:, 0], arrays.items()):
        img = a.T if name.startswith("mel") else a
        im = ax.imshow(img, origin="lower", aspect="auto", interpolation="none")
        ax.set_title(name, fontsize=9)
        fig.colorbar(im, ax=ax, fraction=0.02)
    if title:
        fig.suptitle(title, fontsize=10)
    _save(fig, path)


def plot_alignment(attn: np.ndarray, durations: np.ndarray, path: str, title: str = "") -> None:
    """Attention ``[S, T]`` (tokens x frames) with the duration boundaries drawn over it."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(10, 4))
    ax.imshow(attn, origin="lower", aspect="auto", interpolation="none")
    ends = np.cumsum(durations)
    ax.step(np.concatenate([[0], ends]), np.arange(len(durations) + 1) - 0.5, where="post", color="r", lw=0.8)
    ax.set_xlabel("mel frame")
    ax.set_ylabel("token")
    ax.set_title(title, fontsize=9)
    _save(fig, path)


def plot_curves(rows: list[dict], path: str, keys: list[str], x: str = "step") -> None:
    """Each metric of ``keys`` present in ``rows`` (metrics.csv rows) against ``x``, one panel each."""
    plt = _plt()
    keys = [k for k in keys if any(k in r for r in rows)]
    if not keys:
        return
    fig, axes = plt.subplots(len(keys), 1, figsize=(7, 2.2 * len(keys)), squeeze=False, sharex=True)
    for ax, k in zip(axes[:, 0], keys):
        pts = [(float(r[x]), float(r[k])) for r in rows if k in r and x in r]
        if pts:
            ax.plot(*zip(*pts), marker="." if len(pts) < 50 else None)
        ax.set_ylabel(k, fontsize=8)
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel(x)
    _save(fig, path)


def plot_histogram(values: list[float], path: str, threshold: float | None = None, title: str = "",
                   xlabel: str = "focus rate", bins: int = 20, range_: tuple[float, float] = (0.0, 1.0)) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.hist(values, bins=bins, range=range_, color="tab:blue", edgecolor="white")
    if threshold is not None:
        ax.axvline(threshold, color="r", ls="--", label=f"threshold {threshold:g}")
        ax.legend(fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("utterances")
    ax.set_title(title, fontsize=9)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    _save(fig, path)
