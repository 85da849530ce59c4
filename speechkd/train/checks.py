"""Pass/fail checks of a finished training run, read from its ``metrics.csv``.

A stage that trains checks its own result the way the teacher dump checks the teacher's
alignment: a run whose training loss did not fall (or became NaN) taught the model nothing,
and whatever is trained or evaluated on it afterwards only hides that.
"""

from __future__ import annotations

import csv
import math

from speechkd.errors import SpeechkdError


def _values(metrics_csv: str, key: str) -> list[float]:
    try:
        with open(metrics_csv, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except FileNotFoundError:
        raise SpeechkdError("metrics file does not exist", path=metrics_csv,
                            hint="the training run writes it; did it run?") from None
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise SpeechkdError(f"cannot read the metrics ({e})", path=metrics_csv) from None
    out = []
    for n, r in enumerate(rows, 2):
        v = (r.get(key) or "").strip()
        if not v:
            continue  # a row of other metrics (validation) or of a step that did not log this one
        try:
            out.append(float(v))
        except ValueError:
            raise SpeechkdError(f"line {n}: {key} {v!r} is not a number", path=metrics_csv, field=key) from None
    return out


def check_loss_fell(metrics_csv: str, key: str = "train/loss", min_drop: float = 0.0, window: int = 5) -> dict:
    """Check that ``key`` fell over the run: the mean of its last ``window`` logged values is
    below the mean of its first ``window`` by more than ``min_drop`` (a share of the first:
    0.1 = by 10%). The windows shrink to half the values on a short run. Returns the figures
    (first, last, drop, n); raises :class:`SpeechkdError` naming them when the loss did not
    fall, is not finite at the end, or was logged fewer than twice."""
    if not 0.0 <= min_drop < 1.0 or window < 1:
        raise SpeechkdError(f"min_drop must be in [0, 1) and window >= 1, not {min_drop:g} and {window}")
    vals = _values(metrics_csv, key)
    if len(vals) < 2:
        raise SpeechkdError(f"{key} was logged {len(vals)} time(s): too few to tell whether it fell",
                            path=metrics_csv, field=key, hint="train for more steps than the logging interval")
    w = min(window, len(vals) // 2)
    first, last = sum(vals[:w]) / w, sum(vals[-w:]) / w
    fig = {"key": key, "first": first, "last": last, "n": len(vals), "window": w,
           "drop": (first - last) / abs(first) if first and math.isfinite(first) else float("nan")}
    if not math.isfinite(last):
        raise SpeechkdError(f"{key} is {last} over the last {w} logged steps: the run diverged", path=metrics_csv,
                            field=key, hint="lower the learning rate (optim.lr) and train again")
    if not (last < first and fig["drop"] > min_drop):
        raise SpeechkdError(f"{key} did not fall: mean {first:.4g} over the first {w} logged steps, {last:.4g} over "
                            f"the last {w} (a drop of {100 * fig['drop']:.1f}%, at least {100 * min_drop:.1f}% "
                            f"wanted)", path=metrics_csv, field=key,
                            hint="train longer (trainer.max_minutes / trainer.max_steps; a run resumes) or lower "
                                 "the learning rate; the curves are in plots/ beside it")
    return fig
