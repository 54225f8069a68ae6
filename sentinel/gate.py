"""The gate: may a challenger replace the champion? A pure function of both models' predictions on the
same held-out rows; no MLflow, no database."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.stats import binomtest

from sentinel.settings import GatePolicy


@dataclass(frozen=True)
class SliceScores:
    """Labels and both models' predictions on one held-out slice."""

    y_true: np.ndarray
    champion: np.ndarray
    challenger: np.ndarray


@dataclass(frozen=True)
class Decision:
    """The gate's decision with the numbers behind it, as stored on the version and in the ledger."""

    decision: str  # promoted | challenger | rejected
    reason: str
    f1_new: float
    f1_champion: float
    f1_delta: float
    ci_low: float
    ci_high: float
    p_value: float
    f1_reference_new: float
    f1_reference_champion: float
    rows_new: int
    rows_reference: int

    def as_dict(self) -> dict:
        """The decision as the ledger and `--json` store it."""
        return asdict(self)

    @classmethod
    def unmeasured(cls, decision: str, reason: str) -> Decision:
        """A decision taken without a comparison (its numbers are NaN), e.g. by `sentinel doctor`."""
        nan = float("nan")
        return cls(decision, reason, nan, nan, nan, nan, nan, nan, nan, nan, 0, 0)


def f1(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """F1 of the positive class along the last axis, so a whole bootstrap is computed at once."""
    tp = np.sum((y_pred == 1) & (y_true == 1), axis=-1)
    fp = np.sum((y_pred == 1) & (y_true == 0), axis=-1)
    fn = np.sum((y_pred == 0) & (y_true == 1), axis=-1)
    denominator = 2 * tp + fp + fn
    return np.where(denominator > 0, 2 * tp / np.maximum(denominator, 1), 0.0)


def paired_bootstrap(scores: SliceScores, rounds: int, alpha: float, seed: int = 0) -> tuple[float, float]:
    """Percentile interval of F1(challenger) - F1(champion), resampling the same rows for both models."""
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(scores.y_true), size=(rounds, len(scores.y_true)))
    y = scores.y_true[picks]
    deltas = f1(y, scores.challenger[picks]) - f1(y, scores.champion[picks])
    low, high = np.quantile(deltas, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


def mcnemar(scores: SliceScores) -> float:
    """Exact McNemar p-value: do the two models err on different rows more often than chance allows?"""
    champion_right = scores.champion == scores.y_true
    challenger_right = scores.challenger == scores.y_true
    only_champion = int(np.sum(champion_right & ~challenger_right))
    only_challenger = int(np.sum(~champion_right & challenger_right))
    if only_champion + only_challenger == 0:
        return 1.0
    return float(binomtest(only_challenger, only_champion + only_challenger, 0.5).pvalue)


def decide(new: SliceScores, reference: SliceScores, policy: GatePolicy, seed: int = 0) -> Decision:
    """Promote only when the challenger is better on the newest rows by the margin, significantly by
    both the bootstrap interval and McNemar, clears the F1 floor, and does not regress on the reference."""
    f1_new, f1_champion = float(f1(new.y_true, new.challenger)), float(f1(new.y_true, new.champion))
    ref_new, ref_champion = float(f1(reference.y_true, reference.challenger)), float(f1(reference.y_true, reference.champion))
    delta = f1_new - f1_champion
    low, high = paired_bootstrap(new, policy.bootstrap_rounds, policy.alpha, seed) if len(new.y_true) else (float("nan"),) * 2
    p_value = mcnemar(new)
    regression = ref_champion - ref_new

    if len(new.y_true) == 0:
        decision, reason = "challenger", "no held-out rows of new data to compare on"
    elif f1_new < policy.min_f1:
        decision, reason = "rejected", f"F1 on the new data {f1_new:.3f} is below the floor {policy.min_f1:.2f}; its labels may be wrong"
    elif regression > policy.reference_regression:
        decision, reason = "rejected", f"F1 on the reference slice drops by {regression:.3f} (bound {policy.reference_regression:.3f})"
    elif high < 0:
        decision, reason = "rejected", f"significantly worse on the new data: F1 delta {delta:+.3f}, 95% CI [{low:+.3f}, {high:+.3f}]"
    elif delta < policy.margin:
        decision, reason = "challenger", f"F1 delta {delta:+.3f} is below the margin {policy.margin:.3f}"
    elif low <= 0 or p_value >= policy.alpha:
        decision, reason = "challenger", f"F1 delta {delta:+.3f} is not significant: CI [{low:+.3f}, {high:+.3f}], McNemar p={p_value:.3g}"
    else:
        decision, reason = (
            "promoted",
            f"F1 {f1_champion:.3f} -> {f1_new:.3f} ({delta:+.3f}, CI [{low:+.3f}, {high:+.3f}], p={p_value:.3g}); reference slice F1 {-regression:+.3f}",
        )
    return Decision(
        decision, reason, f1_new, f1_champion, delta, low, high, p_value, ref_new, ref_champion, len(new.y_true), len(reference.y_true)
    )
