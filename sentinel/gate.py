"""The gate: may a challenger replace the champion? Pure functions of both models' predictions on the
same rows; no MLflow, no database. The state carried between looks (`Evidence`) is a plain value that
the caller stores in the ledger.

One metric (a setting) answers one question everywhere: the margin, the interval and the test are all
on that metric, on the same rows. Superiority is judged where the world moved (the held-out rows of the
batches whose drift caused the retrain); every other slice may only show that the challenger is not
worse by more than a stated bound. Evidence is carried forward: each later labeled batch, scored before
anything learns it, adds to an anytime-valid e-process, so looking after every batch does not inflate
the rate of false promotions.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace

import numpy as np

from sentinel.settings import GatePolicy

METRICS = ("accuracy", "macro_f1", "balanced_accuracy")

# The e-process is a mixture of betting martingales, one per fraction of wealth bet on each row. A
# mixture of test supermartingales is one too, so Ville's inequality bounds P(ever >= 1/alpha) by alpha
# under the null however often it is looked at. Small bets win slowly but safely on small effects, large
# bets quickly on large ones; the mixture pays for not knowing which by a factor of len(BETS).
BETS = (0.02, 0.05, 0.1, 0.2, 0.35, 0.5)


@dataclass(frozen=True)
class SliceScores:
    """Labels and both models' predictions on one slice of rows."""

    y_true: np.ndarray
    champion: np.ndarray
    challenger: np.ndarray

    @property
    def rows(self) -> int:
        """How many rows the slice holds."""
        return len(self.y_true)

    @classmethod
    def empty(cls) -> SliceScores:
        """A slice with no rows."""
        nothing = np.zeros(0, dtype=int)
        return cls(nothing, nothing, nothing)

    def take(self, mask: np.ndarray) -> SliceScores:
        """The rows the mask selects."""
        return SliceScores(self.y_true[mask], self.champion[mask], self.challenger[mask])

    def __add__(self, other: SliceScores) -> SliceScores:
        """The rows of both slices."""
        return SliceScores(*(np.concatenate([getattr(self, f.name), getattr(other, f.name)]) for f in fields(self)))


def metric(name: str, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """The named metric along the last axis (so a whole bootstrap is computed at once); nan on no rows."""
    if y_true.shape[-1] == 0:
        return np.asarray(float("nan"))
    right = y_true == y_pred
    if name == "accuracy":
        return right.mean(axis=-1)
    recalls = []
    f1s = []
    for cls in (0, 1):
        actual, predicted = y_true == cls, y_pred == cls
        tp = np.sum(actual & predicted, axis=-1)
        n_actual, n_predicted = np.sum(actual, axis=-1), np.sum(predicted, axis=-1)
        recalls.append(np.where(n_actual > 0, tp / np.maximum(n_actual, 1), np.nan))
        f1s.append(np.where(n_actual + n_predicted > 0, 2 * tp / np.maximum(n_actual + n_predicted, 1), 0.0))
    if name == "balanced_accuracy":
        return np.nanmean(np.stack(recalls), axis=0)
    if name == "macro_f1":
        return np.mean(np.stack(f1s), axis=0)
    raise ValueError(f"unknown metric {name!r}: use one of {', '.join(METRICS)}")


BOOTSTRAP_DRAWS = 1 << 20  # resampled rows drawn at once: 8 MB of indices and a few MB of labels


def bootstrap_deltas(scores: SliceScores, name: str, rounds: int, seed: int = 0) -> np.ndarray:
    """metric(challenger) - metric(champion) on `rounds` paired resamples of the same rows, a few rounds at
    a time (all at once held four rounds x rows arrays: 330 MB for 10,000 rows); the same draws, to the bit."""
    rng, per_draw = np.random.default_rng(seed), max(1, BOOTSTRAP_DRAWS // max(1, scores.rows))
    sizes = [min(per_draw, rounds - done) for done in range(0, rounds, per_draw)]
    picks = (rng.integers(0, scores.rows, size=(size, scores.rows)) for size in sizes)  # drawn in order
    deltas = [metric(name, scores.y_true[p], scores.challenger[p]) - metric(name, scores.y_true[p], scores.champion[p]) for p in picks]
    return np.concatenate([np.zeros(0), *deltas])


# --- the sequential test ---------------------------------------------------------------------------


def observations(look: SliceScores, name: str) -> tuple[np.ndarray, float]:
    """One look's paired differences as observations in [-1, 1] whose mean has the sign of the metric's
    delta, and the factor that turns a delta of the metric into the same scale (for the margin).

    Accuracy: one observation a row, challenger right minus champion right. Balanced accuracy: the same,
    each row weighted by its class's inverse share in the look, divided by the largest weight so it
    stays in [-1, 1]. Macro F1 has no per-row form: one observation a look, the look's delta; valid, but
    much slower to convince."""
    if look.rows == 0:
        return np.zeros(0), 1.0
    right = (look.challenger == look.y_true).astype(float) - (look.champion == look.y_true).astype(float)
    if name == "accuracy":
        return right, 1.0
    if name == "balanced_accuracy":
        shares = {cls: np.mean(look.y_true == cls) for cls in (0, 1)}
        present = [cls for cls in (0, 1) if shares[cls] > 0]
        weights = np.array([1 / (len(present) * shares[cls]) for cls in look.y_true])
        scale = 1 / weights.max()
        return right * weights * scale, scale
    delta = float(metric(name, look.y_true, look.challenger) - metric(name, look.y_true, look.champion))
    return np.array([delta]), 1.0


@dataclass(frozen=True)
class Evidence:
    """The e-processes of one challenger against one champion, summed over every look so far.

    `better` tests "the challenger is no better than the champion plus the margin" (large: promote);
    `worse` tests "the challenger is no worse than the champion" (large: retire). Both are stored as the
    log wealth of each bet in `BETS`, so an update needs only the new look."""

    champion_version: str
    metric: str
    margin: float
    log_better: tuple[float, ...] = tuple(0.0 for _ in BETS)
    log_worse: tuple[float, ...] = tuple(0.0 for _ in BETS)
    rows: int = 0
    looks: int = 0
    delta_sum: float = 0.0  # the metric's delta, summed over looks weighted by rows (for the running mean)
    challenger_right: int = 0  # the challenger's correct predictions over every row looked at
    batches: tuple[str, ...] = ()

    @property
    def e_better(self) -> float:
        """The e-value against "no better than the champion + margin"."""
        return float(np.mean(np.exp(self.log_better)))

    @property
    def e_worse(self) -> float:
        """The e-value against "no worse than the champion"."""
        return float(np.mean(np.exp(self.log_worse)))

    @property
    def mean_delta(self) -> float:
        """The metric's delta over every row looked at; nan before the first."""
        return self.delta_sum / self.rows if self.rows else float("nan")

    @property
    def challenger_accuracy(self) -> float:
        """The challenger's accuracy over every row looked at; nan before the first."""
        return self.challenger_right / self.rows if self.rows else float("nan")

    def add(self, look: SliceScores, batches: tuple[str, ...] = ()) -> Evidence:
        """The evidence after one more look at rows neither model was trained on."""
        if look.rows == 0:
            return self
        x, scale = observations(look, self.metric)
        m = self.margin * scale
        bets = np.asarray(BETS)[:, None]
        # 1 + bet * (x - m) > 0 because x >= -1, m < 1 and every bet <= 0.5.
        better = np.asarray(self.log_better) + np.log1p(bets * (x - m)).sum(axis=1)
        worse = np.asarray(self.log_worse) + np.log1p(-bets * x).sum(axis=1)
        delta = float(metric(self.metric, look.y_true, look.challenger) - metric(self.metric, look.y_true, look.champion))
        return replace(
            self,
            log_better=tuple(float(v) for v in better),
            log_worse=tuple(float(v) for v in worse),
            rows=self.rows + look.rows,
            looks=self.looks + 1,
            delta_sum=self.delta_sum + delta * look.rows,
            challenger_right=self.challenger_right + int(np.sum(look.challenger == look.y_true)),
            batches=self.batches + tuple(batches),
        )

    def as_dict(self) -> dict:
        """As the ledger stores it."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Evidence:
        """Read back what `as_dict` stored."""
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


# --- decisions -------------------------------------------------------------------------------------

SUPERIORITY, NON_INFERIORITY = "superiority", "non-inferiority"


@dataclass(frozen=True)
class SliceResult:
    """One slice's comparison: its rows, both models' metric, the delta and its interval, and the verdict."""

    name: str  # shifted | other-new | reference | shadow
    test: str  # superiority | non-inferiority
    rows: int
    challenger: float
    champion: float
    delta: float
    ci_low: float
    ci_high: float
    verdict: str  # better | not-yet | worse | non-inferior | unproven | underpowered | inferior | too-few-rows
    cross_fitted: int = 0  # how many of the rows were predicted out of fold (see `Slices`)

    @property
    def rows_said(self) -> str:
        """Its rows in words: "400 rows (320 cross-fitted)"."""
        return f"{self.rows} rows" + (f" ({self.cross_fitted} cross-fitted)" if self.cross_fitted else "")

    def describe(self) -> str:
        """The slice in one line, as the version's tag shows it."""
        return f"{self.verdict}: {self.rows_said}, {self.champion:.4f} -> {self.challenger:.4f}"


@dataclass(frozen=True)
class Decision:
    """A decision with the evidence behind it, as stored on the version's tags, in the ledger and shown
    by `sentinel show`: the metric, each slice with its rows and both models' values, the interval and
    the e-value, and the rule that decided."""

    decision: str  # promoted | challenger | rejected | retired
    reason: str
    metric: str
    metric_new: float  # the challenger on the deciding slice
    metric_champion: float
    delta: float
    ci_low: float
    ci_high: float
    p_value: float  # anytime-valid: 1 / e-value, capped at 1
    e_value: float
    rule: str  # which rule decided, in a few words
    deciding_slice: str
    slices: tuple[SliceResult, ...] = ()
    bad_batches: tuple[str, ...] = ()  # batches whose labels the challenger could not learn
    evidence: Evidence | None = None

    def as_dict(self) -> dict:
        """The decision as the ledger and `--json` store it."""
        data = asdict(self)
        data["slices"] = [asdict(s) for s in self.slices]
        data["evidence"] = self.evidence.as_dict() if self.evidence else None
        return data

    def tags(self) -> dict:
        """The decision's numbers as `sentinel.*` version tags; a number not measured is left out."""
        numbers = {
            "metric_new": self.metric_new,
            "metric_champion": self.metric_champion,
            "delta": self.delta,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "p_value": self.p_value,
            "e_value": self.e_value,
        }
        tags = {"metric": self.metric, "rule": self.rule, "slice": self.deciding_slice}
        tags |= {k: round(v, 6) for k, v in numbers.items() if v == v}
        tags |= {f"slice_{s.name}": s.describe() for s in self.slices}
        if self.bad_batches:
            tags["bad_batches"] = ",".join(self.bad_batches)
        return tags

    @classmethod
    def unmeasured(cls, decision: str, reason: str, metric_name: str = "accuracy") -> Decision:
        """A decision taken without a comparison (its numbers are NaN), e.g. by `sentinel doctor`."""
        nan = float("nan")
        return cls(decision, reason, metric_name, nan, nan, nan, nan, nan, nan, nan, "unmeasured", "none")


def compare(name: str, scores: SliceScores, test: str, policy: GatePolicy, seed: int = 0) -> SliceResult:
    """One slice: the metric of both models, the paired bootstrap interval of the delta (two-sided at
    alpha), and the verdict of a non-inferiority test (one-sided at alpha: the lower bound of the delta
    must clear -bound). Superiority verdicts come from the e-process, not from here."""
    nan = float("nan")
    if scores.rows < policy.min_slice_rows:
        challenger = float(metric(policy.metric, scores.y_true, scores.challenger)) if scores.rows else nan
        champion = float(metric(policy.metric, scores.y_true, scores.champion)) if scores.rows else nan
        return SliceResult(name, test, scores.rows, challenger, champion, challenger - champion, nan, nan, "too-few-rows")
    challenger = float(metric(policy.metric, scores.y_true, scores.challenger))
    champion = float(metric(policy.metric, scores.y_true, scores.champion))
    deltas = bootstrap_deltas(scores, policy.metric, policy.bootstrap_rounds, seed)
    low, high = (float(q) for q in np.quantile(deltas, [policy.alpha / 2, 1 - policy.alpha / 2]))
    verdict = ""
    if test == NON_INFERIORITY:
        one_sided_low, one_sided_high = (float(q) for q in np.quantile(deltas, [policy.alpha, 1 - policy.alpha]))
        if one_sided_high < -policy.noninferiority_bound:
            verdict = "inferior"
        elif one_sided_low >= -policy.noninferiority_bound:
            verdict = "non-inferior"
        elif (one_sided_high - one_sided_low) / 2 > policy.noninferiority_bound:
            # Too few rows for the test ever to show the bound (its half-width alone is wider): the slice
            # cannot inform the decision either way, so it is reported, not waited for. A loss beyond
            # the bound that it does show still rejects (inferior, above).
            verdict = "underpowered"
        else:
            verdict = "unproven"
    return SliceResult(name, test, scores.rows, challenger, champion, challenger - champion, low, high, verdict)


def unlearnable(per_batch: dict[str, SliceScores], policy: GatePolicy, shifted: tuple[str, ...] = ()) -> tuple[str, ...]:
    """Batches whose labels the challenger, which learned them, still cannot predict on their held-out
    (or cross-fitted) rows: its accuracy there is surely below `min_metric` (one-sided bound at alpha).
    Flipped, random or another task's labels look like this; a genuine new domain that a model learned
    does not.

    When several `shifted` batches were learned together, each of them must also be predicted surely
    better than a coin. 100 rows of random labels score 0.5 give or take 0.05, so "surely below 0.6"
    missed 40 % of them (400 simulated batches): in `bench/streams.py`'s small labelled stream a 100-row random batch was
    learned with three genuine ones and promoted on their gain. The coin names such a batch 94 % of the
    time, and a genuine one the model learned to 0.68 about 2 % of it. Only a batch scoring below its
    siblings' mean is held to the coin, and a lone shifted batch is spared: the first 100 rows of a new
    domain can score near chance for the champion and the challenger alike (0.52 and 0.57 on the first
    Rotten Tomatoes batch after an IMDB reference), and when such a batch was learned beside a random
    one, both were named."""
    z = _z(policy.alpha)
    checked = {b: scores for b, scores in per_batch.items() if scores.rows >= policy.min_slice_rows}
    accuracy = {b: float(np.mean(scores.challenger == scores.y_true)) for b, scores in checked.items()}
    bad = []
    for batch_id, scores in checked.items():
        spread = z * math.sqrt(max(accuracy[batch_id] * (1 - accuracy[batch_id]), 0.25 / scores.rows) / scores.rows)
        siblings = [accuracy[b] for b in checked if b in shifted and b != batch_id]
        coin = batch_id in shifted and bool(siblings) and accuracy[batch_id] - spread <= 0.5 and accuracy[batch_id] < np.mean(siblings)
        if accuracy[batch_id] + spread < policy.min_metric or coin:
            bad.append(batch_id)
    return tuple(bad)


def _z(alpha: float) -> float:
    from statistics import NormalDist

    return NormalDist().inv_cdf(1 - alpha)


@dataclass(frozen=True)
class Slices:
    """The rows a new challenger is judged on: where the world moved (`shifted`: held-out rows of the
    batches that caused the retrain), the other new rows, and the reference (held-out rows of the
    champion's own training batches); and the held-out rows of each new batch, to judge its labels.

    `cross_fitted`: how many of the shifted rows (and of those of each batch) are training rows of the
    shifted batches predicted out of fold. A few hundred held-out rows cannot show a gain of a few
    points, and small batches would wait several batches for their first promotion; the training rows
    can, when each is predicted by a model fitted like the challenger without it. They measure the
    retraining (the fold models learned a little less of the new data than the challenger), and rows
    predicted by the same fold model are not independent: the held-out rows stay the only ones of the
    non-inferiority slices."""

    shifted: SliceScores
    other_new: SliceScores = field(default_factory=SliceScores.empty)
    reference: SliceScores = field(default_factory=SliceScores.empty)
    per_batch: dict[str, SliceScores] = field(default_factory=dict)
    shifted_batches: tuple[str, ...] = ()
    cross_fitted: int = 0

    def unchecked(self, policy: GatePolicy) -> tuple[str, ...]:
        """Shifted batches with too few rows for `unlearnable` to judge their labels."""
        return tuple(b for b in self.shifted_batches if b in self.per_batch and self.per_batch[b].rows < policy.min_slice_rows)


def decide(
    slices: Slices, policy: GatePolicy, champion_version: str = "", seed: int = 0, *, refresh: bool = False, harmed: bool = False
) -> Decision:
    """Judge a challenger at its birth.

    Rejected: the labels of some new batch cannot be learned (those batches are named, so they are kept
    out of later training), or it is inferior beyond the bound on a slice, or the e-process says it is
    worse where the world moved. Promoted: the e-process on the shifted rows clears 1/alpha and every
    other slice with enough rows is shown non-inferior. Otherwise challenger: its evidence is carried
    to the next labeled batches (`shadow`).

    `refresh`: no drift harmed the champion; the challenger learned the same data and more of the world
    as it is now. Its question is then whether the fresher model is at least as good: it is also
    promoted when every slice, the new rows included, is shown non-inferior.

    `harmed`: the champion measurably lost accuracy on a batch where the data moved, and the challenger
    learned that batch. Keeping the champion is then no neutral default either: the challenger is also
    promoted when it is shown non-inferior everywhere and is not behind where the data moved (its delta
    there at least 0). Superiority alone needs about 300 paired rows to show a gain of 4 to 7 points
    at alpha 0.05, so with 100-row batches a harmful shift waited for its third batch."""
    evidence = Evidence(champion_version, policy.metric, policy.margin).add(slices.shifted, slices.shifted_batches)
    shifted = replace(compare("shifted", slices.shifted, SUPERIORITY, policy, seed), cross_fitted=slices.cross_fitted)
    others = [
        compare(name, scores, NON_INFERIORITY, policy, seed)
        for name, scores in (("other-new", slices.other_new), ("reference", slices.reference))
        if scores.rows
    ]
    bad = unlearnable(slices.per_batch, policy, slices.shifted_batches)
    threshold = 1 / policy.alpha
    if evidence.e_better >= threshold:
        shifted = replace(shifted, verdict="better")
    elif evidence.e_worse >= threshold:
        shifted = replace(shifted, verdict="worse")
    elif shifted.verdict != "too-few-rows":
        shifted = replace(shifted, verdict="not-yet")
    # A refresh, or a retrain that answers harm, may also be promoted as not worse on the new rows.
    fresh = None
    if refresh or harmed:
        fresh = replace(compare("new", slices.shifted, NON_INFERIORITY, policy, seed), cross_fitted=slices.cross_fitted)
    results = (shifted, *others) + ((fresh,) if fresh else ())

    def made(decision: str, reason: str, rule: str, on: SliceResult = shifted) -> Decision:
        e = evidence.e_better if on is shifted else float("nan")
        return Decision(
            decision,
            reason,
            policy.metric,
            on.challenger,
            on.champion,
            on.delta,
            on.ci_low,
            on.ci_high,
            min(1.0, 1 / e) if e == e and e > 0 else float("nan"),
            e,
            rule,
            on.name,
            results,
            bad,
            evidence,
        )

    name = policy.metric
    if bad:
        return made(
            "rejected",
            f"the labels of {', '.join(bad)} cannot be learned: the model that learned them predicts their unseen rows no better than a coin, or surely below accuracy {policy.min_metric:.2f}",
            "labels",
        )
    inferior = next((r for r in others if r.verdict == "inferior"), None)
    if inferior is not None:
        return made(
            "rejected",
            f"{name} on the {inferior.name} slice drops by {-inferior.delta:.3f} ({inferior.rows} rows, CI [{inferior.ci_low:+.3f}, {inferior.ci_high:+.3f}]), beyond the bound {policy.noninferiority_bound:.3f}",
            "non-inferiority",
            inferior,
        )
    if shifted.verdict == "worse":
        return made(
            "rejected",
            f"worse where the data moved: {name} {shifted.delta:+.3f} on {shifted.rows} rows, e-value {evidence.e_worse:.1f} against 'no worse'",
            "e-process",
        )
    if shifted.rows == 0:
        return made("challenger", "no held-out rows of the new data to compare on yet: judged on the next labeled batches", "no rows")
    unproven = [r for r in others if r.verdict == "unproven"]
    if shifted.verdict == "better" and not unproven:
        return made(
            "promoted",
            f"{name} {shifted.champion:.3f} -> {shifted.challenger:.3f} ({shifted.delta:+.3f}) on {shifted.rows_said} where the data moved, e-value {evidence.e_better:.1f} >= {threshold:g}"
            + "".join(f"; {r.name} {r.delta:+.3f} ({r.verdict})" for r in others),
            "e-process",
        )
    if fresh is not None and fresh.verdict == "non-inferior" and not unproven and (refresh or fresh.delta >= 0):
        why = (
            "a refresh, not worse anywhere"
            if refresh
            else "the champion lost accuracy where the data moved; the challenger learned it and is not worse anywhere"
        )
        return made(
            "promoted",
            f"{why}: {name} {fresh.delta:+.3f} on the new rows, {fresh.rows_said} (one-sided bound above -{policy.noninferiority_bound:.3f})"
            + "".join(f"; {r.name} {r.delta:+.3f} ({r.verdict})" for r in others),
            "non-inferiority (refresh)" if refresh else "non-inferiority (harm)",
            fresh,
        )
    if shifted.verdict == "better":
        return made(
            "challenger",
            f"better where the data moved ({shifted.delta:+.3f}, e-value {evidence.e_better:.1f}) but not yet shown non-inferior on "
            + ", ".join(f"{r.name} ({r.delta:+.3f} on {r.rows} rows, CI [{r.ci_low:+.3f}, {r.ci_high:+.3f}])" for r in unproven),
            "non-inferiority",
        )
    return made(
        "challenger",
        f"{name} {shifted.delta:+.3f} on {shifted.rows_said} where the data moved is not yet evidence enough (e-value {evidence.e_better:.2f} < {threshold:g}): scored on the next labeled batches",
        "e-process",
    )


def shadow(evidence: Evidence, look: SliceScores, policy: GatePolicy, batches: tuple[str, ...] = ()) -> tuple[Evidence, str, str]:
    """One more labeled batch, scored by the champion and a live challenger before anything learned it.
    Returns the new evidence, the verdict (promote | retire | keep) and why."""
    evidence = evidence.add(look, batches)
    threshold = 1 / policy.alpha
    summary = f"{evidence.metric} {evidence.mean_delta:+.3f} over {evidence.rows} rows in {evidence.looks} looks"
    if evidence.e_better >= threshold:
        return evidence, "promote", f"shadow evidence: {summary}, e-value {evidence.e_better:.1f} >= {threshold:g}"
    if evidence.e_worse >= threshold:
        return evidence, "retire", f"shadow evidence says it is worse: {summary}, e-value {evidence.e_worse:.1f} against 'no worse'"
    if evidence.looks > policy.max_shadow_batches:
        return (
            evidence,
            "retire",
            f"no decision after {policy.max_shadow_batches} shadow batches: {summary}, e-value {evidence.e_better:.2f}",
        )
    return evidence, "keep", f"shadow evidence so far: {summary}, e-value {evidence.e_better:.2f}"
