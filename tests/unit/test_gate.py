"""The gate is a pure function: these cases need no MLflow and no database."""

from __future__ import annotations

import numpy as np
import pytest

from sentinel.gate import SliceScores, decide, f1, mcnemar, paired_bootstrap
from sentinel.settings import GatePolicy

POLICY = GatePolicy()
RNG = np.random.default_rng(7)


def predictions(y: np.ndarray, accuracy: float, seed: int) -> np.ndarray:
    wrong = np.random.default_rng(seed).random(len(y)) > accuracy
    return np.where(wrong, 1 - y, y)


def scores(n: int, champion_acc: float, challenger_acc: float, seed: int = 0) -> SliceScores:
    y = np.random.default_rng(seed).integers(0, 2, n)
    return SliceScores(y, predictions(y, champion_acc, seed + 1), predictions(y, challenger_acc, seed + 2))


STABLE_REFERENCE = scores(2000, 0.89, 0.89, seed=100)


def test_f1_matches_scikit_learn():
    from sklearn.metrics import f1_score

    y, p = RNG.integers(0, 2, 500), RNG.integers(0, 2, 500)
    assert f1(y, p) == pytest.approx(f1_score(y, p))


def test_clearly_better_challenger_is_promoted():
    decision = decide(scores(1000, 0.70, 0.80), STABLE_REFERENCE, POLICY)
    assert decision.decision == "promoted"
    assert decision.ci_low > 0 and decision.p_value < 0.05 and decision.f1_delta > POLICY.margin


def test_small_gain_is_not_significant_so_challenger():
    decision = decide(scores(300, 0.80, 0.81), STABLE_REFERENCE, POLICY)
    assert decision.decision == "challenger"
    assert "not significant" in decision.reason or "below the margin" in decision.reason


def test_gain_below_margin_is_challenger_even_if_significant():
    decision = decide(scores(20000, 0.800, 0.803), STABLE_REFERENCE, GatePolicy(margin=0.05))
    assert decision.decision == "challenger" and "below the margin" in decision.reason


def test_regression_on_reference_slice_rejects_a_better_challenger():
    reference = scores(2000, 0.89, 0.85, seed=5)
    decision = decide(scores(1000, 0.70, 0.80), reference, POLICY)
    assert decision.decision == "rejected" and "reference slice" in decision.reason


def test_challenger_below_the_f1_floor_is_rejected():
    # Flipped labels: both models look terrible on the new rows, the one that learned them a bit less.
    decision = decide(scores(1000, 0.10, 0.30), STABLE_REFERENCE, POLICY)
    assert decision.decision == "rejected" and "below the floor" in decision.reason


def test_significantly_worse_challenger_is_rejected():
    decision = decide(scores(2000, 0.85, 0.75), STABLE_REFERENCE, POLICY)
    assert decision.decision == "rejected" and "significantly worse" in decision.reason


def test_no_new_rows_cannot_promote():
    empty = SliceScores(np.array([], int), np.array([], int), np.array([], int))
    assert decide(empty, STABLE_REFERENCE, POLICY).decision == "challenger"


def test_identical_models_have_a_null_interval_and_p_value_one():
    y = RNG.integers(0, 2, 400)
    same = SliceScores(y, predictions(y, 0.8, 1), predictions(y, 0.8, 1))
    assert paired_bootstrap(same, 200, 0.05) == (0.0, 0.0)
    assert mcnemar(same) == 1.0


def test_bootstrap_interval_covers_the_true_difference_most_of_the_time():
    covered = 0
    for seed in range(40):
        s = scores(800, 0.80, 0.84, seed=seed * 3)
        low, high = paired_bootstrap(s, 400, 0.05, seed=seed)
        covered += low <= float(f1(s.y_true, s.challenger) - f1(s.y_true, s.champion)) <= high
    assert covered == 40  # the point estimate always lies inside its own percentile interval


def test_decision_is_reproducible():
    a = decide(scores(500, 0.7, 0.76), STABLE_REFERENCE, POLICY)
    b = decide(scores(500, 0.7, 0.76), STABLE_REFERENCE, POLICY)
    assert a == b
