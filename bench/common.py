"""Helpers shared by the benchmarks: medians of interleaved repetitions, printed as ratios."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def interleaved(candidates: dict[str, Callable[[], object]], repeats: int) -> dict[str, list[float]]:
    """Run every candidate once per round, so a noisy neighbour slows all of them alike."""
    times: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(repeats):
        for name, fn in candidates.items():
            times[name].append(timed(fn))
    return times


def report(title: str, times: dict[str, list[float]], floor: str) -> None:
    base = statistics.median(times[floor])
    print(f"\n{title}")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"  {name:<44} median {median:7.3f} s  ({len(values)} runs, min {min(values):.3f})  ratio {median / base:5.2f}")
