"""Drift: is a labeled batch different from the data the champion was trained on?

Evidently measures every statistic: text content drift (its domain classifier's ROC AUC), label drift
(Jensen-Shannon) and drift of three cheap text descriptors (normed Wasserstein). Sentinel adds what
Evidently leaves to the user: thresholds calibrated on stable splits of the reference, so a stable batch
does not raise an alarm, and the champion's own accuracy on the labeled batch (performance drift).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from sentinel import drift_worker, evidently_workspace, text_drift
from sentinel.row_slices import predict_in_slices
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


def evidently_dataset(frame: pd.DataFrame) -> Dataset:
    """A frame of `with_descriptors` as the Evidently dataset every signal is measured on."""
    from evidently import DataDefinition, Dataset

    definition = DataDefinition(text_columns=["text"], categorical_columns=["label"], numerical_columns=list(DESCRIPTORS))
    return Dataset.from_pandas(frame, data_definition=definition)


# The domain classifier's ROC AUC, named: Evidently's absolute text content drift, each text tokenised
# once per process (see `text_drift`). Left to choose, Evidently would take the percentile variant for a
# reference of 1,000 rows or fewer: the same score, plus 1,000 shuffled ROC AUCs for its own threshold
# (2.5 s against 0.16 s for 200 rows against 600). Sentinel compares the score with its calibrated threshold.
TEXT_METHOD = text_drift.METHOD


def value_drift(name: str, threshold: float | None = None):
    """Evidently's `ValueDrift` of one signal, with the method Sentinel scores it by (the text's named;
    the others as Evidently chooses them), and Evidently's default threshold unless one is given.
    Checks keep the default: the dashboard draws one line per distinct set of a metric's parameters, so
    a calibrated threshold, which moves with the batch's size, would split each signal's line."""
    from evidently.metrics import ValueDrift

    text_drift.register()
    return ValueDrift(column=name, method=TEXT_METHOD if name == "text" else None, threshold=threshold)


@dataclass(frozen=True)
class Scorer:
    """The champion, whose predictions of a batch give the performance signal. `key` names the fitted
    model (version and digest), so a drift worker keeps it and is sent it once, not with every check."""

    key: str
    model: object  # a fitted pipeline that predicts from a frame with a `text` column

    def __call__(self, batch: pd.DataFrame) -> np.ndarray:
        """The model's predictions of the batch's texts."""
        return _predictions(self.model, batch["text"])


def _predictions(model, texts) -> np.ndarray:
    return predict_in_slices(model.predict, pd.DataFrame({"text": texts}))


def _text_snapshot(current: list[str], reference: list[str]) -> SnapshotModel:
    """Evidently's text content drift alone, as Evidently's serialisable snapshot model."""
    from evidently import DataDefinition, Dataset, Report

    definition = DataDefinition(text_columns=["text"])
    current_data = Dataset.from_pandas(pd.DataFrame({"text": current}), data_definition=definition)
    reference_data = Dataset.from_pandas(pd.DataFrame({"text": reference}), data_definition=definition)
    return Report([value_drift("text")]).run(current_data, reference_data).to_snapshot_model()


def text_job(current: list[str], reference: list[str], model=None, texts: list[str] | None = None):
    """The worker's share of a warm check: the text signal's snapshot model, and the model's
    predictions of `texts` (the batch's own texts) when a model is given."""
    predicted = None if model is None else _predictions(model, texts)
    return _text_snapshot(current, reference), predicted


def start_text_drift(current: pd.Series, reference: pd.Series, scorer: Scorer | None = None, batch: pd.DataFrame | None = None):
    """Start the text signal in the worker, with the scorer's predictions of `batch` when both are given;
    `run_report` collects it."""
    predicting = () if scorer is None or batch is None else (drift_worker.Held(scorer.key, scorer.model), batch["text"].tolist())
    return drift_worker.start("text", current.tolist(), reference.tolist(), *predicting)


# The text signal of the batch to be checked next, started in the worker while this process finishes
# the current check (its MLflow run, the ledger, the flow run around it): with a backlog both cores
# measure. Held with the rows it measures (the batch as given and neutralised, the reference) and the
# scorer that predicts them, so only the very same check can claim it.
@dataclass(frozen=True)
class _HeadStart:
    rows: pd.DataFrame  # the batch's text and label as given
    neutral: pd.DataFrame  # the same, neutralised: what was sent
    against: pd.Series  # the reference's texts
    scorer_key: str | None
    pending: drift_worker.Worker


_ahead: _HeadStart | None = None


def can_start_ahead() -> bool:
    """True when this process splits the work with a worker (see `measure`) that has nothing queued."""
    return _ahead is None and "evidently" in sys.modules and drift_worker.available()


def start_ahead(batch: pd.DataFrame, reference: pd.DataFrame, scorer: Scorer | None = None) -> None:
    """Start the text signal of `batch` (checked next against `reference`, with `scorer`'s predictions) in
    the worker, when `can_start_ahead`. `measure` of the same batch, reference and scorer claims the
    answer; its verdict is the one it would get alone."""
    global _ahead
    if not can_start_ahead():
        return
    rows = batch[["text", "label"]].reset_index(drop=True)
    neutral = neutralise(rows)
    pending = start_text_drift(neutral["text"], reference["text"], scorer, batch)
    if pending is not None:
        _ahead = _HeadStart(rows, neutral, reference["text"], scorer and scorer.key, pending)


def _ahead_of(rows: pd.DataFrame) -> _HeadStart | None:
    """The head start made of these very rows (a batch's text and label), if any: its neutralised rows
    spare the check a second pass (10 ms for 200 long reviews; comparing them costs a twentieth)."""
    return _ahead if _ahead is not None and _ahead.rows.equals(rows) else None


def _claim_ahead(same_rows: _HeadStart | None, reference: pd.Series, scorer: Scorer | None, timeout: float) -> drift_worker.Worker | None:
    """The text signal started ahead, when it is `same_rows` (`_ahead_of` the batch checked) measured
    against this reference with this scorer. One started for anything else (the champion changed, or
    another process checked that batch) is read and dropped, which frees the worker."""
    global _ahead
    if _ahead is None:
        return None
    ahead, _ahead = _ahead, None
    # Comparisons: a tenth of hashing the reference.
    if ahead is same_rows and ahead.scorer_key == (scorer and scorer.key) and ahead.against.equals(reference):
        return ahead.pending
    try:
        drift_worker.collect(ahead.pending, timeout)
    except RuntimeError:
        pass
    return None


def _text_result(pending, current: pd.DataFrame, reference: pd.DataFrame, timeout: float | None) -> tuple[Snapshot, np.ndarray | None]:
    """The text signal's snapshot, and the predictions the worker made with it (None: not made there)."""
    from evidently.core.report import Snapshot

    answer = drift_worker.collect(pending, timeout)
    if answer is None:
        answer = (_text_snapshot(current["text"].tolist(), reference["text"].tolist()), None)
    return Snapshot.load_model(answer[0]), answer[1]


def run_report(
    current: pd.DataFrame, reference: pd.DataFrame, text_drift: drift_worker.Worker | None = None, timeout: float | None = None
) -> Snapshot:
    """One Evidently snapshot with one `ValueDrift` per signal (`ValueDrift` fits the domain classifier
    once, where `DataDriftPreset` fits it several times). Both frames come from `with_descriptors`;
    pass `text_drift` when the text signal was started earlier, `timeout` to bound the wait for it."""
    return _report_and_predictions(current, reference, text_drift, timeout)[0]


def _report_and_predictions(
    current: pd.DataFrame, reference: pd.DataFrame, text_drift, timeout: float | None
) -> tuple[Snapshot, np.ndarray | None]:
    from evidently import Report

    if text_drift is None:
        text_drift = start_text_drift(current["text"], reference["text"])
    try:
        others = Report([value_drift(name) for name in SIGNALS if name != "text"]).run(
            evidently_dataset(current), evidently_dataset(reference)
        )
    except BaseException:
        drift_worker.abandon(text_drift)
        raise
    text, predicted = _text_result(text_drift, current, reference, timeout)
    return _join(text, others), predicted


def _join(first: Snapshot, second: Snapshot) -> Snapshot:
    """One snapshot holding the metrics and widgets of both, in order, through Evidently's own
    serialisation model."""
    from evidently.core.report import Snapshot

    joined, extra = first.to_snapshot_model(), second.to_snapshot_model()
    joined.metric_results.update(extra.metric_results)
    joined.top_level_metrics = [*joined.top_level_metrics, *extra.top_level_metrics]
    joined.widgets = [*joined.widgets, *extra.widgets]
    return Snapshot.load_model(joined)


def _scores(snapshot) -> dict[str, tuple[float, str]]:
    results = {}
    for metric in snapshot.dict()["metrics"]:
        config = metric["config"]
        results[config["column"]] = (float(metric["value"]), str(config.get("method")))
    return results


def measure(
    batch: pd.DataFrame,
    reference: pd.DataFrame,
    calibration: Calibration,
    predict: Callable[[pd.DataFrame], Sequence[int]] | None,
    policy: DriftPolicy,
    report_path: Path | None = None,
    workspace: Path | None = None,
    name: str = "drift check",
    worker_free: Callable[[], None] | None = None,
) -> DriftVerdict:
    """Measure every signal of one labeled batch against the champion's reference. With `report_path`
    the report is written there (Evidently's HTML for a `.html` path, else the snapshot's JSON); with
    `workspace` the snapshot is added to that Evidently workspace under `name`. `worker_free` is called
    as soon as the worker holds nothing more of this check, before the report and the snapshot are
    written: a head start for the next check given there keeps the worker busy meanwhile.

    Where the statistics run depends on what this process has imported. A warm process (`sentinel up`,
    a long `watch`) computes the descriptors and four signals itself while the worker fits the text
    signal's classifier and, given a `Scorer`, predicts with the champion: the shortest wall time. A
    cold one (a standalone `sentinel process`) would spend 3-5 s importing Evidently for the smaller half
    of the work, so the worker, which imports it from its start, does all of Evidently's work while this
    process predicts with the champion."""
    rows = batch[["text", "label"]].reset_index(drop=True)
    same_rows = _ahead_of(rows)
    neutral = same_rows.neutral if same_rows is not None else neutralise(rows)
    keep = Kept(None if report_path is None else str(report_path), None if workspace is None else str(workspace), name)
    warm = "evidently" in sys.modules
    scorer = predict if isinstance(predict, Scorer) else None
    if warm:
        pending = _claim_ahead(same_rows, reference["text"], scorer, policy.worker_timeout_seconds)
        pending = pending or start_text_drift(neutral["text"], reference["text"], scorer, batch)
    else:
        pending = drift_worker.start("signals", neutral, reference, keep)
    # A warm worker predicts with a `Scorer` it keeps, beside the text signal; else this process does,
    # while the worker measures.
    predicted_there = warm and pending is not None and scorer is not None
    try:
        current = _describe(neutral) if warm else None
        predicted = None if predict is None or predicted_there else np.asarray(predict(batch))
    except BaseException:
        drift_worker.abandon(pending)  # never leave the worker busy with an answer nobody reads
        raise
    if warm:
        snapshot, from_worker = _report_and_predictions(current, reference, pending, policy.worker_timeout_seconds)
        if worker_free is not None:
            worker_free()
        scores = _measured_scores(snapshot, keep)
        if predicted_there:  # None when the worker died and this process measured the text after all
            predicted = from_worker if from_worker is not None else np.asarray(predict(batch))
    else:
        scores = drift_worker.collect(pending, policy.worker_timeout_seconds)
        if scores is None:  # no worker, or it died: here after all
            scores = all_scores(neutral, reference, keep)
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
    """Each signal's score and method, once the snapshot is kept where `keep` says: a report path ending
    in `.html` gets Evidently's HTML report, any other the snapshot's JSON (what the workspace keeps too,
    serialised once for both)."""
    snapshot.set_name(keep.name)
    report = None if keep.report_path is None else Path(keep.report_path)
    as_html = report is not None and report.suffix == ".html"
    json_report = report is not None and not as_html
    text = evidently_workspace.snapshot_json(snapshot) if json_report or keep.workspace is not None else None
    if report is not None:
        report.parent.mkdir(parents=True, exist_ok=True)
        if as_html:
            snapshot.save_html(str(report))
        else:
            report.write_text(text)
    if keep.workspace is not None:
        evidently_workspace.add_snapshot_json(Path(keep.workspace), DESCRIPTORS, text)
    return _scores(snapshot)


def all_scores(neutral: pd.DataFrame, reference: pd.DataFrame, keep: Kept) -> dict[str, tuple[float, str]]:
    """All of Evidently's work for one neutralised batch: descriptors, every signal, the report kept."""
    return _measured_scores(run_report(_describe(neutral), reference), keep)


def prepare() -> None:
    """Import Evidently now: the worker calls this at its start, so its first job does not wait for it; a
    watcher that checks drift (`up`, `watch`), so that `measure` splits the work between it and the worker."""
    import evidently.metrics  # noqa: F401
