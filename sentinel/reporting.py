"""What a training run shows in the MLflow UI beyond numbers: its input datasets, its curves, and the
description a person reads on the registered version's page."""

from __future__ import annotations

import warnings

import mlflow
import numpy as np

from sentinel.explain import as_code, gate_lines, model_line
from sentinel.gate import Decision
from sentinel.ledger import TuningRow
from sentinel.settings import ModelParams
from sentinel.training import Evaluation, TrainingData


def log_inputs(data: TrainingData) -> None:
    """Record the three datasets of the run (training rows and both held-out slices) as MLflow inputs."""
    for context, frame in (("training", data.train), ("holdout_new", data.holdout_new), ("holdout_reference", data.holdout_reference)):
        if frame.empty:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the schema hint about integer columns: labels are never missing
            dataset = mlflow.data.from_pandas(frame, targets="label", name=f"{context}-{len(frame)}rows")
            mlflow.log_input(dataset, context=context)


def log_curves(evaluation: Evaluation) -> None:
    """Confusion matrix and ROC curve of the held-out rows, as figures in the run's artifacts."""
    if evaluation.rows == 0 or len(np.unique(evaluation.y_true)) < 2:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay, RocCurveDisplay

    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4.5))
    ConfusionMatrixDisplay.from_predictions(
        evaluation.y_true, evaluation.y_pred, display_labels=["negative", "positive"], ax=left, colorbar=False
    )
    left.set_title("Confusion matrix (held-out rows)")
    RocCurveDisplay.from_predictions(evaluation.y_true, evaluation.y_score, ax=right)
    right.set_title("ROC curve (held-out rows)")
    figure.tight_layout()
    mlflow.log_figure(figure, "evaluation/confusion_and_roc.png")
    plt.close(figure)


def version_description(
    data: TrainingData,
    batches: list[tuple[str, str, int]],
    outcome: str,
    reason: str,
    decision: Decision | None,
    params: ModelParams,
    search: TuningRow | None,
) -> str:
    """Markdown for the version's description in the MLflow UI: what it learned (files and sources of the
    new batches), the model and the search it came from, what was decided and why, and the numbers of
    each slice the gate compared. `batches`: (file, source, rows) of each new batch."""
    lines = [f"**{outcome}**: {reason}", ""]
    if batches:
        sources = sorted({source or "default" for _, source, _ in batches})
        files = ", ".join(f"{as_code(file)} ({rows} rows)" for file, _, rows in batches[:20])
        more = f" and {len(batches) - 20} more" if len(batches) > 20 else ""
        lines.append(
            f"Trained on {len(data.train)} rows: every batch its champion learned, plus {files}{more}; sources: {', '.join(map(as_code, sources))}."
        )
    else:
        lines.append(f"Trained on {len(data.train)} rows of the reference.")
    lines += ["", model_line(params, search)]
    if decision is not None:
        lines += gate_lines(decision.as_dict())
    return "\n".join(lines)
