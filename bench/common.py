"""Helpers shared by the benchmarks: medians of interleaved repetitions, printed as ratios."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path


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


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                parent = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            tree.setdefault(parent, []).append(int(entry))
    return tree


def _tree(root: int) -> list[int]:
    """`root` and all its descendants."""
    tree, pending, found = _children(), [root], []
    while pending:
        pid = pending.pop()
        found.append(pid)
        pending.extend(tree.get(pid, []))
    return found


def _fields_kb(pid: int, name: str) -> dict[str, int]:
    """The "Field:   N kB" lines of /proc/PID/NAME (smaps_rollup: Rss, Pss; status: VmHWM), in kB; empty
    for a process that is gone."""
    try:
        lines = Path(f"/proc/{pid}/{name}").read_text().splitlines()
    except OSError:
        return {}
    return {key: int(rest.split()[0]) for key, _, rest in (line.partition(":") for line in lines) if rest.strip().endswith("kB")}


def tree_kb(root: int) -> tuple[int, int]:
    """(PSS, RSS) in kB summed over `root` and all its descendants."""
    rollups = [_fields_kb(pid, "smaps_rollup") for pid in _tree(root)]
    return sum(r.get("Pss", 0) for r in rollups), sum(r.get("Rss", 0) for r in rollups)


def tree_cpu(root: int) -> dict[str, float]:
    """CPU seconds (user + system) of `root` and its descendants, summed by what each process runs.
    A process's figure includes the children it has reaped (a runner's finished flow runs)."""
    tick, found = os.sysconf("SC_CLK_TCK"), {}
    for pid in _tree(root):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        label = _label(pid)
        found[label] = found.get(label, 0.0) + sum(int(f) for f in fields[11:15]) / tick  # utime stime cutime cstime
    return found


def _label(pid: int) -> str:
    try:
        words = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "?"
    return " ".join(w.decode(errors="replace").rsplit("/", 1)[-1] for w in words[1:4] if w)


def tree_breakdown(root: int) -> dict[str, int]:
    """PSS in kB of `root` and its descendants, summed by what each process runs. Take a peak's total
    from the same sample (`sum` of it): a breakdown read after the total can miss a short peak."""
    return _by_label(root, "smaps_rollup", "Pss", sum)


def tree_high_water(root: int) -> dict[str, int]:
    """The peak RSS in kB each process of `root`'s tree has reached so far (the kernel's VmHWM), by what
    it runs, the largest process of each kind: a short peak between two samples is not missed."""
    return _by_label(root, "status", "VmHWM", max)


def _by_label(root: int, name: str, field: str, combine) -> dict[str, int]:
    found: dict[str, list[int]] = {}
    for pid in _tree(root):
        value = _fields_kb(pid, name).get(field)
        if value is not None:
            found.setdefault(_label(pid), []).append(value)
    return {label: combine(values) for label, values in found.items()}


def print_breakdown(breakdown: dict[str, int], indent: str = "    ") -> None:
    """What `tree_breakdown` found, largest first, in MB."""
    for label, kb in sorted(breakdown.items(), key=lambda item: -item[1]):
        print(f"{indent}{kb / 1024:6.0f} MB  {label}")
