"""Triggers: does a drift verdict start a retrain? A stated policy (`drift.trigger`), a pure function
of the verdict and the champion's accuracy on the last few batches.

Drift is not harm. A domain classifier tells a batch from the reference long before the champion gets
worse on it (a topic the reviews lean to, a new share of the classes, a reference that mixes two sites),
and a retrain on harmless drift costs a fit and a gate for nothing. The default retrains when the
champion's accuracy on the labeled batch drops beyond its noise; `any` keeps the old rule."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from sentinel.drift import DriftVerdict
from sentinel.settings import DriftPolicy


@dataclass(frozen=True)
class Accuracy:
    """The champion's accuracy on one checked batch, and what it expected on unseen rows of its own data."""

    accuracy: float
    rows: int
    expected: float
    expected_rows: int = 0


@dataclass(frozen=True)
class Trigger:
    """Whether a retrain is due, by which rule, and why, in words a person reads in `batches`."""

    rule: str  # the policy: any | harmful | sustained
    fired: bool
    why: str
    accuracy: Accuracy | None = None

    def as_dict(self) -> dict:
        """As the ledger and `--json` store it."""
        return asdict(self)


def _noise(expected: float, rows: int, expected_rows: int) -> float:
    variance = max(expected * (1 - expected), 1e-4)
    return math.sqrt(variance / rows + (variance / expected_rows if expected_rows else 0.0))


def decide(verdict: DriftVerdict, policy: DriftPolicy, accuracy: Accuracy | None, earlier: list[Accuracy]) -> Trigger:
    """The retrain trigger for one checked batch. `earlier`: the champion's accuracy on the batches
    checked before it against the same reference, newest last (used by `sustained`)."""
    drifted = [s.name for s in verdict.signals if s.drifted]
    performance = verdict.signal("performance")
    harmed = performance is not None and performance.drifted
    if verdict.suspect_labels:
        return Trigger(policy.trigger, False, "labels look inverted: the batch is not learned", accuracy)
    if policy.trigger == "any":
        why = f"drift in {', '.join(drifted)}" if drifted else "no signal drifted"
        return Trigger("any", bool(drifted), why, accuracy)
    if harmed:
        return Trigger(policy.trigger, True, f"harmful drift: {performance.method}", accuracy)
    if policy.trigger == "sustained" and accuracy is not None:
        window = [*earlier[-(policy.sustain_batches - 1) :], accuracy]
        if len(window) >= policy.sustain_batches:
            rows = sum(a.rows for a in window)
            pooled = sum(a.accuracy * a.rows for a in window) / rows
            drop = accuracy.expected - pooled
            threshold = policy.performance_drop / 2 + policy.z * _noise(accuracy.expected, rows, accuracy.expected_rows)
            if drop > threshold:
                return Trigger(
                    "sustained",
                    True,
                    f"sustained loss: accuracy {pooled:.3f} over the last {len(window)} batches ({rows} rows), expected {accuracy.expected:.3f}",
                    accuracy,
                )
    if drifted:
        return Trigger(policy.trigger, False, f"drift in {', '.join(drifted)} without a loss of accuracy: no retrain", accuracy)
    return Trigger(policy.trigger, False, "no signal drifted", accuracy)
