"""Alignment: attention -> durations (focus rate, head selection) and monotonic alignment search.

Every matrix is tokens x frames ([..., S, T]). Importing this package does not
import numba or torch; the kernels load on first use.
"""

from speechkd.align.durations import (durations_from_attention, durations_to_path, fix_durations, focus_rate,
                                      path_to_durations, select_head, shift_durations)
from speechkd.align.mas import maximum_path

__all__ = ["maximum_path", "focus_rate", "select_head", "durations_from_attention", "fix_durations",
           "durations_to_path", "path_to_durations", "shift_durations"]
