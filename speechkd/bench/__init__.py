"""Speed benchmarks: a generic side-by-side harness (harness.Bench) and the `speechkd bench` suites."""

from speechkd.bench.harness import Bench, Result

__all__ = ["Bench", "Result"]
