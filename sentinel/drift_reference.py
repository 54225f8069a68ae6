"""Drift references and their calibration: the reference a champion's batches are measured against is
sampled from the rows it was trained on, and each signal's no-drift noise is measured on stable
pseudo-batches drawn from the same rows, scored exactly as a real batch is (`drift.Calibration` turns
that noise into each batch's thresholds)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd

from sentinel import drift_worker
from sentinel.drift import SIGNALS, Calibration, evidently_dataset, value_drift, with_descriptors
from sentinel.memo import Memo
from sentinel.settings import DriftPolicy


def unrendered_scores(current: pd.DataFrame, reference: pd.DataFrame) -> dict[str, float]:
    """Each signal's score as `run_report` scores it, without the report: what a calibration draw needs.
    `ValueDrift` computes Evidently's `get_one_column_drift`, then renders widgets nobody sees in a draw,
    at five times the cost of the four non-text statistics (11 % of a replay's CPU). This passes the
    statistic what `ValueDriftCalculation.calculate` does (tests/unit/test_drift.py: equal scores)."""
    from evidently.legacy.calculations.data_drift import get_one_column_drift
    from evidently.legacy.core import ColumnType
    from evidently.legacy.metric_results import DatasetColumns, DatasetUtilityColumns
    from evidently.legacy.options.data_drift import DataDriftOptions

    current_data, reference_data = evidently_dataset(current), evidently_dataset(reference)
    current_frame, reference_frame = current_data.as_dataframe(), reference_data.as_dataframe()
    scores = {}
    for name in SIGNALS:
        # A draw needs the score only: above a threshold Evidently also fits the typical-words classifier
        # of its text widget, and no ROC AUC is above 1.
        metric = value_drift(name, 1.0 if name == "text" else None)
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
