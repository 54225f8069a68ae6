"""Drift: is a labeled batch different from the data the champion was trained on?

Evidently measures every statistic: text content drift (its domain classifier's ROC AUC), label drift
(Jensen-Shannon) and drift of three cheap text descriptors (normed Wasserstein). Sentinel adds what
Evidently leaves to the user: thresholds calibrated on stable splits of the reference, so a stable batch
does not raise an alarm, and the champion's own accuracy on the labeled batch (performance drift).
"""

from __future__ import annotations

import dataclasses
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from sentinel import drift_worker, evidently_workspace, text_drift
from sentinel.memo import Memo
from sentinel.settings import DriftPolicy

if TYPE_CHECKING:
    from evidently import Dataset
    from evidently.core.report import Snapshot
    from evidently.core.serialization import SnapshotModel

# Evidently is imported by the functions that use it, not with this module: importing it takes 3-5 s, and
# a cold `sentinel process` lets the drift worker do that while this process imports MLflow and loads
# the champion (see `measure`).

DESCRIPTORS = ("length", "words", "non_letter")
SIGNALS = ("text", "label", *DESCRIPTORS)

# Evidently's HTML embeds the rows' texts inside a <script> element; angle brackets in a review could
# close it. Full-width look-alikes keep the texts readable and cannot form markup. The tokenizers of the
# domain classifier drop punctuation and the descriptors count them as non-letters either way, so the
# statistics do not change.
_NEUTRAL = str.maketrans({"<": "\uff1c", ">": "\uff1e"})


@dataclass(frozen=True)
class Signal:
    """One drift statistic: its score, the threshold it was held against, and how it was computed."""

    name: str
    score: float
    threshold: float
    method: str
    drifted: bool


@dataclass(frozen=True)
class DriftVerdict:
    """The outcome of one drift check: whether drift is real, each signal, and whether the labels look wrong."""

    detected: bool
    signals: tuple[Signal, ...]
    suspect_labels: bool = False  # the champion disagrees with the labels far more than chance allows
    champion_accuracy: float | None = None  # on the batch's labels, when the champion predicted it
    champion_predictions: tuple[int, ...] | None = None  # the champion's predictions, for the shadow evaluation

    def signal(self, name: str) -> Signal | None:
        """The signal of that name, if it was measured."""
        return next((s for s in self.signals if s.name == name), None)

    def as_dict(self) -> dict:
        """The verdict as the ledger and `--json` store it."""
        return {
            "detected": self.detected,
            "suspect_labels": self.suspect_labels,
            "champion_accuracy": self.champion_accuracy,
            "signals": [asdict(s) for s in self.signals],
        }


@dataclass(frozen=True)
class Calibration:
    """The no-drift noise of each signal, measured on pseudo-batches of `batch_rows` drawn from the
    champion's own training data, and the champion's expected accuracy on unseen rows."""

    batch_rows: int
    calibration_reference_rows: int
    reference_rows: int
    mean: dict[str, float]
    std: dict[str, float]
    expected_accuracy: float
    draws: int
    expected_rows: int = 0  # rows the expected accuracy was measured on (0: treat it as exact)

    def threshold(self, name: str, batch_rows: int, policy: DriftPolicy) -> float:
        """The threshold of one signal for a batch of `batch_rows` rows, from the calibrated no-drift noise."""
        # Without drift, a statistic scatters around its no-drift value (ROC AUC 0.5, distance 0), and
        # both its spread and its offset shrink like sqrt(1/n + 1/N): a distance between two samples of
        # the same data is larger for smaller samples. Rescale the calibrated excursion to this batch.
        scale = math.sqrt((1 / batch_rows + 1 / self.reference_rows) / (1 / self.batch_rows + 1 / self.calibration_reference_rows))
        no_drift = 0.5 if name == "text" else 0.0
        calibrated = no_drift + (self.mean[name] - no_drift + policy.z * self.std[name]) * scale
        floor = {"text": policy.text_threshold_floor, "label": policy.label_threshold}.get(name, policy.descriptor_threshold)
        return max(floor, calibrated)


def neutralise(frame: pd.DataFrame) -> pd.DataFrame:
    """The texts with markup characters replaced, so Evidently's HTML can never carry a live tag."""
    return frame.assign(text=frame["text"].str.translate(_NEUTRAL))


def with_descriptors(frame: pd.DataFrame) -> pd.DataFrame:
    """`text`, `label` and Evidently's text descriptors as plain numeric columns, so the reference's
    descriptors are computed once and stored with it."""
    return _describe(neutralise(frame[["text", "label"]].reset_index(drop=True)))


def _describe(frame: pd.DataFrame) -> pd.DataFrame:
    from evidently import DataDefinition, Dataset
    from evidently.descriptors import NonLetterCharacterPercentage, TextLength, WordCount

    dataset = Dataset.from_pandas(
        frame,
        data_definition=DataDefinition(text_columns=["text"], categorical_columns=["label"]),
        descriptors=[
            TextLength("text", alias="length"),
            WordCount("text", alias="words"),
            NonLetterCharacterPercentage("text", alias="non_letter"),
        ],
    )
    described = dataset.as_dataframe()
    return described[["text", "label", *DESCRIPTORS]].astype({name: "float64" for name in DESCRIPTORS})


def _dataset(frame: pd.DataFrame) -> Dataset:
    from evidently import DataDefinition, Dataset

    definition = DataDefinition(text_columns=["text"], categorical_columns=["label"], numerical_columns=list(DESCRIPTORS))
    return Dataset.from_pandas(frame, data_definition=definition)


# The domain classifier's ROC AUC, named: Evidently's absolute text content drift, each text tokenised
# once per process (see `text_drift`). Left to choose, Evidently would take the percentile variant for a
# reference of 1,000 rows or fewer: the same score, plus 1,000 shuffled ROC AUCs for its own threshold
# (2.5 s against 0.16 s for 200 rows against 600). Sentinel compares the score with its calibrated threshold.
TEXT_METHOD = text_drift.METHOD


def value_drift(name: str):
    """Evidently's `ValueDrift` of one signal, with the method Sentinel scores it by (the text's named;
    the others as Evidently chooses them)."""
    from evidently.metrics import ValueDrift

    text_drift.register()
    return ValueDrift(column=name, method=TEXT_METHOD if name == "text" else None)


def _text_snapshot(current: list[str], reference: list[str]) -> SnapshotModel:
    """Evidently's text content drift alone, as Evidently's serialisable snapshot model."""
    from evidently import DataDefinition, Dataset, Report

    definition = DataDefinition(text_columns=["text"])
    current_data = Dataset.from_pandas(pd.DataFrame({"text": current}), data_definition=definition)
    reference_data = Dataset.from_pandas(pd.DataFrame({"text": reference}), data_definition=definition)
    return Report([value_drift("text")]).run(current_data, reference_data).to_snapshot_model()


def start_text_drift(current: pd.Series, reference: pd.Series) -> drift_worker.Worker | None:
    """Start the text signal in the worker; `run_report` collects it."""
    return drift_worker.start("text", current.tolist(), reference.tolist())


# The text signal of the batch to be checked next, started in the worker while this process finishes
# the current check (its MLflow run, the ledger, the flow run around it): with a backlog both cores
# measure. Held with the texts it measures (batch, reference), so only the very same check can claim it.
_ahead: tuple[pd.Series, pd.Series, drift_worker.Worker] | None = None


def can_start_ahead() -> bool:
    """True when this process splits the work with a worker (see `measure`) that has nothing queued."""
    return _ahead is None and "evidently" in sys.modules and drift_worker.available()


def start_ahead(batch: pd.DataFrame, reference: pd.DataFrame) -> None:
    """Start the text signal of `batch` (checked next against `reference`) in the worker, when
    `can_start_ahead`. `measure` of the same batch and reference claims the answer; its verdict is the
    one it would get alone."""
    global _ahead
    if not can_start_ahead():
        return
    texts = neutralise(batch[["text", "label"]].reset_index(drop=True))["text"]
    pending = start_text_drift(texts, reference["text"])
    if pending is not None:
        _ahead = (texts, reference["text"], pending)


def _claim_ahead(current: pd.Series, reference: pd.Series, timeout: float) -> drift_worker.Worker | None:
    """The text signal started ahead for exactly these texts, if any. One started for other texts (the
    champion changed, or another process checked that batch) is read and dropped, which frees the worker."""
    global _ahead
    if _ahead is None:
        return None
    (texts, against, pending), _ahead = _ahead, None
    if texts.equals(current) and against.equals(reference):  # a comparison: a tenth of hashing the reference
        return pending
    try:
        drift_worker.collect(pending, timeout)
    except RuntimeError:
        pass
    return None


def _text_result(pending: drift_worker.Worker | None, current: pd.DataFrame, reference: pd.DataFrame, timeout: float | None) -> Snapshot:
    from evidently.core.report import Snapshot

    answer = drift_worker.collect(pending, timeout)
    if answer is None:
        answer = _text_snapshot(current["text"].tolist(), reference["text"].tolist())
    return Snapshot.load_model(answer)


def run_report(
    current: pd.DataFrame, reference: pd.DataFrame, text_drift: drift_worker.Worker | None = None, timeout: float | None = None
) -> Snapshot:
    """One Evidently snapshot with one `ValueDrift` per signal (`ValueDrift` fits the domain classifier
    once, where `DataDriftPreset` fits it several times). Both frames come from `with_descriptors`;
    pass `text_drift` when the text signal was started earlier, `timeout` to bound the wait for it."""
    from evidently import Report

    if text_drift is None:
        text_drift = start_text_drift(current["text"], reference["text"])
    try:
        others = Report([value_drift(name) for name in SIGNALS if name != "text"]).run(_dataset(current), _dataset(reference))
    except BaseException:
        drift_worker.abandon(text_drift)
        raise
    return _join(_text_result(text_drift, current, reference, timeout), others)


def _join(first: Snapshot, second: Snapshot) -> Snapshot:
    """One snapshot holding the metrics and widgets of both, in order, through Evidently's own
    serialisation model."""
    from evidently.core.report import Snapshot

    joined, extra = first.to_snapshot_model(), second.to_snapshot_model()
    joined.metric_results.update(extra.metric_results)
    joined.top_level_metrics = [*joined.top_level_metrics, *extra.top_level_metrics]
    joined.widgets = [*joined.widgets, *extra.widgets]
    return Snapshot.load_model(joined)


def unrendered_scores(current: pd.DataFrame, reference: pd.DataFrame) -> dict[str, float]:
    """Each signal's score as `run_report` scores it, without the report: what a calibration draw needs.
    `ValueDrift` computes Evidently's `get_one_column_drift`, then renders widgets nobody sees in a draw,
    at five times the cost of the four non-text statistics (11 % of a replay's CPU). This passes the
    statistic what `ValueDriftCalculation.calculate` does (tests/unit/test_drift.py: equal scores)."""
    from evidently.legacy.calculations.data_drift import get_one_column_drift
    from evidently.legacy.core import ColumnType
    from evidently.legacy.metric_results import DatasetColumns, DatasetUtilityColumns
    from evidently.legacy.options.data_drift import DataDriftOptions

    current_data, reference_data = _dataset(current), _dataset(reference)
    current_frame, reference_frame = current_data.as_dataframe(), reference_data.as_dataframe()
    scores = {}
    for name in SIGNALS:
        metric = value_drift(name)
        column_type = current_data.column(name).type
        kinds = {kind: [name] if column_type == kind else [] for kind in ColumnType}
        columns = DatasetColumns(
            utility_columns=DatasetUtilityColumns(date=None, id=None, target=None, prediction=None),
            target_type=None,
            task=None,
            num_feature_names=kinds[ColumnType.Numerical],
            cat_feature_names=kinds[ColumnType.Categorical],
            text_feature_names=kinds[ColumnType.Text],
            datetime_feature_names=kinds[ColumnType.Datetime],
            target_names=None,
        )
        options = DataDriftOptions(all_features_stattest=metric.method, all_features_threshold=metric.threshold, nbinsx=metric.nbinsx)
        frames = {"current_data": current_frame, "reference_data": reference_frame}
        drift = get_one_column_drift(
            **frames, column_name=name, options=options, dataset_columns=columns, column_type=column_type, agg_data=True
        )
        scores[name] = float(drift.drift_score)
    return scores


def _scores(snapshot) -> dict[str, tuple[float, str]]:
    results = {}
    for metric in snapshot.dict()["metrics"]:
        config = metric["config"]
        results[config["column"]] = (float(metric["value"]), str(config.get("method")))
    return results


def build_reference(
    training: pd.DataFrame, expected_accuracy: float, policy: DriftPolicy, seed: int = 0
) -> tuple[pd.DataFrame, Calibration]:
    """Sample the drift reference from the champion's training rows and calibrate every signal on it.

    Each of `calibration_draws` stable pseudo-batches and the reference it is compared with are two
    disjoint random parts of the training rows, scored exactly as a real batch would be. Overlapping
    parts would inflate the noise (and so the thresholds) by a factor of two here.
    """
    rng = np.random.default_rng(seed)
    size, compared_rows = calibration_sizes(len(training), policy)
    pool_rows = min(len(training), policy.reference_rows + size)
    pool = with_descriptors(training.iloc[_per_source(training, pool_rows, rng)])
    reference = pool.iloc[: policy.reference_rows].reset_index(drop=True)
    draws: dict[str, list[float]] = {name: [] for name in SIGNALS}
    for _ in range(policy.calibration_draws):
        order = rng.permutation(pool_rows)
        batch, compared = pool.iloc[order[:size]], pool.iloc[order[size : size + compared_rows]]
        for name, score in unrendered_scores(batch.reset_index(drop=True), compared.reset_index(drop=True)).items():
            draws[name].append(score)
    calibration = Calibration(
        batch_rows=size,
        calibration_reference_rows=compared_rows,
        reference_rows=len(reference),
        mean={k: float(np.mean(v)) for k, v in draws.items()},
        std={k: _upper_std(v, policy.alpha) for k, v in draws.items()},
        expected_accuracy=float(expected_accuracy),
        draws=policy.calibration_draws,
    )
    return reference, calibration


def calibration_sizes(training_rows: int, policy: DriftPolicy) -> tuple[int, int]:
    """Rows of each calibration pseudo-batch, and of the part of the training rows it is compared with."""
    size = min(policy.calibration_batch_rows, max(50, training_rows // 4))
    return size, min(policy.reference_rows, min(training_rows, policy.reference_rows + size) - size)


def _per_source(training: pd.DataFrame, rows: int, rng: np.random.Generator) -> np.ndarray:
    """Positions of `rows` training rows, shuffled, with every source as equal a share as its rows allow:
    the reference of a champion that learned a second site holds that site in earnest, not as the few
    percent its rows are of the whole, so its batches are not drift any more."""
    if "source" not in training.columns or training["source"].nunique() < 2:
        return rng.choice(len(training), size=rows, replace=False)
    sources = training["source"].fillna("").astype(str).to_numpy()
    groups = [rng.permutation(np.flatnonzero(sources == source)) for source in sorted(set(sources))]
    quota, left, taken = rows, len(groups), []
    for group in sorted(groups, key=len):  # the smallest first, so what it cannot fill goes to the others
        take = min(len(group), quota // left)
        taken.append(group[:take])
        quota, left = quota - take, left - 1
    return rng.permutation(np.concatenate(taken))


def reference_columns(training: pd.DataFrame) -> pd.DataFrame:
    """The columns of the training rows a drift reference is built from."""
    return training[[c for c in ("text", "label", "source") if c in training.columns]].reset_index(drop=True)


class ReferenceJob:
    """A drift reference built in the worker while a retrain fits its model: the reference depends on
    the training rows only, so it is ready (or nearly) when the gate has decided."""

    def __init__(self, training: pd.DataFrame, policy: DriftPolicy, seed: int, memo: Memo | None = None) -> None:
        self.args = (reference_columns(training), policy, seed)
        self.memo = memo or Memo()
        self.pending = drift_worker.start("reference", *self.args)

    def result(self, expected_accuracy: float, expected_rows: int = 0) -> tuple[pd.DataFrame, Calibration]:
        """The reference and its calibration, waiting for the worker if it is still building them."""
        answer = drift_worker.collect(self.pending, self.args[1].worker_timeout_seconds)
        self.pending = None
        if answer is None:
            answer = self.memo("reference", build_reference, self.args[0], 0.0, self.args[1], self.args[2])
        reference, calibration = answer
        return reference, dataclasses.replace(calibration, expected_accuracy=float(expected_accuracy), expected_rows=int(expected_rows))

    def discard(self) -> None:
        """Not needed (no promotion, or the run failed): the answer is still read, so the worker is free
        for the next job; an error the job met does not matter any more."""
        try:
            drift_worker.collect(self.pending, self.args[1].worker_timeout_seconds)
        except RuntimeError:
            pass
        self.pending = None


def _upper_std(values: list[float], alpha: float) -> float:
    """Upper (1 - alpha) confidence bound of the standard deviation from a few draws (chi-square). A
    spread estimated from ten draws is often 30 % too small; a threshold built on it would raise false
    alarms, so Sentinel errs on the side of silence."""
    from scipy.stats import chi2

    if len(values) < 2:
        return 0.0
    dof = len(values) - 1
    return float(np.std(values, ddof=1) * math.sqrt(dof / chi2.ppf(alpha, dof)))


def measure(
    batch: pd.DataFrame,
    reference: pd.DataFrame,
    calibration: Calibration,
    predict: Callable[[pd.DataFrame], Sequence[int]] | None,
    policy: DriftPolicy,
    report_path: Path | None = None,
    workspace: Path | None = None,
    name: str = "drift check",
) -> DriftVerdict:
    """Measure every signal of one labeled batch against the champion's reference. With `report_path`
    the HTML report is written there; with `workspace` the snapshot is added to that Evidently
    workspace under `name`.

    Where the statistics run depends on what this process has imported. A warm process (`sentinel up`,
    a long `watch`) computes the descriptors and four signals itself while the worker fits the text
    signal's classifier: the shortest wall time. A cold one (a standalone `sentinel process`) would spend
    3-5 s importing Evidently for the smaller half of the work, so the worker, which imports it from its
    start, does all of Evidently's work while this process predicts with the champion."""
    neutral = neutralise(batch[["text", "label"]].reset_index(drop=True))
    keep = Kept(None if report_path is None else str(report_path), None if workspace is None else str(workspace), name)
    warm = "evidently" in sys.modules
    if warm:
        pending = _claim_ahead(neutral["text"], reference["text"], policy.worker_timeout_seconds) or start_text_drift(
            neutral["text"], reference["text"]
        )
    else:
        pending = drift_worker.start("signals", neutral, reference, keep)
    try:
        current = _describe(neutral) if warm else None
        predicted = None if predict is None else np.asarray(predict(batch))  # while the worker measures
    except BaseException:
        drift_worker.abandon(pending)  # never leave the worker busy with an answer nobody reads
        raise
    if warm:
        scores = _measured_scores(run_report(current, reference, pending, policy.worker_timeout_seconds), keep)
    else:
        scores = drift_worker.collect(pending, policy.worker_timeout_seconds)
        if scores is None:  # no worker, or it died: here after all
            scores = _all_scores(neutral, reference, keep)
    signals = []
    for name, (score, method) in scores.items():
        threshold = calibration.threshold(name, len(batch), policy)
        label = "domain classifier ROC AUC" if name == "text" else method
        signals.append(Signal(name, round(score, 5), round(threshold, 5), f"{label} (calibrated, z={policy.z:g})", score > threshold))

    suspect, accuracy = False, None
    if predicted is not None:
        accuracy = float(np.mean(predicted == batch["label"].to_numpy()))
        expected = calibration.expected_accuracy
        # Both the batch's accuracy and the expected one are estimates: the noise of the drop is both.
        variance = max(expected * (1 - expected), 1e-4)
        noise = math.sqrt(variance / len(batch) + (variance / calibration.expected_rows if calibration.expected_rows else 0.0))
        drop_threshold = policy.performance_drop + policy.z * noise
        drop = expected - accuracy
        signals.append(
            Signal(
                "performance",
                round(drop, 5),
                round(drop_threshold, 5),
                f"champion accuracy drop (expected {expected:.3f}, got {accuracy:.3f})",
                drop > drop_threshold,
            )
        )
        suspect = accuracy < policy.suspect_accuracy
    predictions = None if predicted is None else tuple(int(p) for p in predicted)
    return DriftVerdict(any(s.drifted for s in signals), tuple(signals), suspect, accuracy, predictions)


@dataclass(frozen=True)
class Kept:
    """Where a drift check's snapshot is kept, by whichever process computed it: the HTML report's path,
    the Evidently workspace's folder and the snapshot's name there (None: not kept there)."""

    report_path: str | None
    workspace: str | None
    name: str


def _measured_scores(snapshot: Snapshot, keep: Kept) -> dict[str, tuple[float, str]]:
    """Each signal's score and method, once the snapshot is kept where `keep` says."""
    if keep.report_path is not None:
        Path(keep.report_path).parent.mkdir(parents=True, exist_ok=True)
        snapshot.save_html(keep.report_path)
    if keep.workspace is not None:
        evidently_workspace.add_snapshot(Path(keep.workspace), DESCRIPTORS, snapshot, keep.name)
    return _scores(snapshot)


def _all_scores(neutral: pd.DataFrame, reference: pd.DataFrame, keep: Kept) -> dict[str, tuple[float, str]]:
    """All of Evidently's work for one neutralised batch: descriptors, every signal, the report kept."""
    return _measured_scores(run_report(_describe(neutral), reference), keep)


def prepare() -> None:
    """Import Evidently now: the worker calls this at its start, so its first job does not wait for it; a
    watcher that checks drift (`up`, `watch`), so that `measure` splits the work between it and the worker."""
    import evidently.metrics  # noqa: F401


JOBS = {
    "text": _text_snapshot,
    "signals": _all_scores,
    "reference": lambda training, policy, seed: build_reference(training, 0.0, policy, seed),
}
