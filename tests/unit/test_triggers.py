"""The retrain trigger is a stated policy: a pure function of a verdict and the champion's recent accuracy."""

from __future__ import annotations

from sentinel.drift import DriftVerdict, Signal
from sentinel.settings import DriftPolicy
from sentinel.triggers import Accuracy, decide


def verdict(*drifted: str, suspect: bool = False) -> DriftVerdict:
    names = ("text", "label", "length", "performance")
    return DriftVerdict(bool(drifted), tuple(Signal(n, 0.9 if n in drifted else 0.1, 0.5, n, n in drifted) for n in names), suspect)


def test_any_retrains_on_any_signal():
    policy = DriftPolicy(trigger="any")
    assert decide(verdict("label"), policy, None, []).fired
    assert not decide(verdict(), policy, None, []).fired


def test_harmful_retrains_only_when_the_champion_loses_accuracy():
    policy = DriftPolicy(trigger="harmful")
    quiet = decide(verdict("text", "length"), policy, None, [])
    assert not quiet.fired and "without a loss of accuracy" in quiet.why
    harmed = decide(verdict("text", "performance"), policy, None, [])
    assert harmed.fired and harmed.why.startswith("harmful drift")


def test_inverted_labels_never_trigger():
    assert not decide(verdict("performance", suspect=True), DriftPolicy(trigger="any"), None, []).fired


def test_sustained_pools_a_small_loss_over_several_batches():
    policy = DriftPolicy(trigger="sustained", sustain_batches=3)
    small_loss = Accuracy(0.81, 500, 0.89, 1000)  # 8 points: within one batch's noise (threshold 0.11), not three (0.07)
    alone = decide(verdict(), policy, small_loss, [])
    assert not alone.fired
    pooled = decide(verdict(), policy, small_loss, [small_loss, small_loss])
    assert pooled.fired and "sustained loss" in pooled.why
    assert not decide(verdict(), DriftPolicy(trigger="harmful"), small_loss, [small_loss, small_loss]).fired
