"""Prediction: what one model version says about a CSV of reviews, and how well, when it has labels."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from sentinel.context import Sentinel, resolve_version
from sentinel.errors import SentinelError
from sentinel.row_slices import predict_in_slices


def predict_file(app: Sentinel, path: Path, alias: str = "champion", version: str | None = None) -> dict:
    """Predictions of one model for a CSV; with labels, also its accuracy and F1 there."""
    if not path.is_file():
        raise SentinelError(f"file not found: {path}")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise SentinelError(f"{path.name} is not a readable UTF-8 CSV: {error}") from None
    frame.columns = [str(c).strip().lower() for c in frame.columns]
    if "text" not in frame.columns:
        raise SentinelError(f"{path.name} has no `text` column (found: {', '.join(frame.columns)})")
    row = resolve_version(app, alias, version)
    model = app.load_model(row)
    scores = predict_in_slices(model.predict_proba, frame[["text"]])[:, 1]
    labels = (scores >= 0.5).astype(int)
    result = {
        "version": row.version,
        "rows": len(frame),
        "predictions": [{"text": t, "label": int(y), "probability": round(float(p), 4)} for t, y, p in zip(frame["text"], labels, scores)],
    }
    if "label" in frame.columns:
        known = {k.strip().lower(): v for k, v in app.settings.intake.label_values.items()}
        truth = frame["label"].str.strip().str.lower().map(known)
        known = truth.notna().to_numpy()
        if known.any():
            from sklearn.metrics import accuracy_score, f1_score

            result["accuracy"] = float(accuracy_score(truth[known].astype(int), labels[known]))
            result["f1"] = float(f1_score(truth[known].astype(int), labels[known]))
    return result
