"""What a training run shows in the MLflow UI beyond numbers: its input datasets and its curves."""

from __future__ import annotations

import warnings

import mlflow
import numpy as np

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
