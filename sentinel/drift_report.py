"""The scheduled drift report: the batches since the last report, together, against the champion's
reference. Evidently computes it; Sentinel saves the HTML under reports/, logs it to MLflow and adds the
snapshot to the project's Evidently workspace (`sentinel.evidently_workspace`), whose dashboard `sentinel
up` serves."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
from evidently import BinaryClassification, DataDefinition, Dataset, Report
from evidently.metrics import Accuracy, F1Score

from sentinel import drift, evidently_workspace, intake
from sentinel.context import Sentinel
from sentinel.errors import SentinelError
from sentinel.ledger import CHECKED, DriftReportRow
from sentinel.references import champion_reference
from sentinel.row_slices import predict_in_slices

PROJECT = evidently_workspace.PROJECT


def unreported_batches(app: Sentinel) -> list:
    """Drift-checked batches that no report has covered yet."""
    reported = {b for report in app.ledger.drift_reports() for b in report.batch_ids}
    return [b for b in app.ledger.batches(status="accepted") if b.drift_status in CHECKED and b.batch_id not in reported]


def _dataset(frame: pd.DataFrame) -> Dataset:
    definition = DataDefinition(
        text_columns=["text"],
        categorical_columns=["label", "prediction"],
        numerical_columns=list(drift.DESCRIPTORS),
        classification=[BinaryClassification(target="label", prediction_labels="prediction")],
    )
    return Dataset.from_pandas(frame, data_definition=definition)


def build(current: pd.DataFrame, reference: pd.DataFrame):
    """Drift of every signal plus the champion's accuracy and F1 on both sides. Both frames come from
    `drift.with_descriptors` and carry the champion's `prediction`."""
    metrics = [drift.value_drift(name) for name in drift.SIGNALS] + [Accuracy(), F1Score()]
    return Report(metrics).run(_dataset(current), _dataset(reference))


def make_report(app: Sentinel, now: dt.datetime | None = None) -> dict | None:
    """One report of the unreported batches, or None when there are none."""
    batches = unreported_batches(app)
    if not batches:
        return None
    champion = app.require_champion()
    reference, _ = champion_reference(app, champion)
    model = app.load_model(champion)
    rows = pd.concat([intake.load_batch_frame(b.stored_path) for b in batches], ignore_index=True)
    sampled = rows.sample(n=min(len(rows), app.settings.drift.reference_rows), random_state=app.settings.model.seed)
    current = drift.with_descriptors(sampled)
    current["prediction"] = predict_in_slices(model.predict, sampled[["text"]])
    reference = reference.assign(prediction=predict_in_slices(model.predict, reference[["text"]]))
    snapshot = build(current, reference)

    now = now or dt.datetime.now(dt.timezone.utc)
    html = app.settings.reports_dir / f"drift-report-{now:%Y%m%d-%H%M%S}.html"
    html.parent.mkdir(parents=True, exist_ok=True)
    snapshot.save_html(str(html))
    name = f"report: {len(batches)} batches vs v{champion.version}"
    snapshot_id = evidently_workspace.add_snapshot(app.settings.evidently_dir, drift.DESCRIPTORS, snapshot, name)
    run_id = _log_to_mlflow(app, html, batches, snapshot, champion.version)
    with app.ledger.transaction() as session:
        session.add(
            DriftReportRow(
                batch_ids=[b.batch_id for b in batches],
                rows=len(rows),
                reference_version=champion.version,
                html_path=str(html),
                mlflow_run_id=run_id,
                snapshot_id=snapshot_id,
                made_at=now,
            )
        )
    return {
        "batches": len(batches),
        "rows": len(rows),
        "html": str(html),
        "mlflow_run_id": run_id,
        "snapshot_id": snapshot_id,
        "reference_version": champion.version,
    }


def check_html(app: Sentinel, batch_id: str) -> Path:
    """The HTML report of a batch's latest drift check: the file the check wrote when it kept HTML, else
    rendered once from the snapshot JSON it kept (`drift.check_report`), beside it."""
    if app.ledger.batch(batch_id) is None:
        raise SentinelError(f"unknown batch {batch_id!r}; see `sentinel batches`")
    checks = app.ledger.drift_checks(batch_id)
    if not checks or not checks[-1].report_path:
        raise SentinelError(f"batch {batch_id} has no drift check with a report yet; see `sentinel batches`")
    kept = Path(checks[-1].report_path)
    if not kept.exists():
        raise SentinelError(f"the report of batch {batch_id}'s drift check is no longer on disk: {kept}")
    if kept.suffix == ".html":
        return kept
    html = kept.with_suffix(".html")
    if not html.exists():  # written whole or not at all: a reader never sees half a page
        snapshot = evidently_workspace.load_snapshot(kept.read_text())
        intake.write_atomically(html, lambda path: snapshot.save_html(str(path)))
    return html


def scores(snapshot) -> dict[str, float]:
    """Each metric's value by a short name: text, label, the descriptors, accuracy, f1."""
    named = {}
    for metric in snapshot.dict()["metrics"]:
        kind = metric["config"]["type"].rsplit(":", 1)[-1]
        named[metric["config"].get("column") or kind.lower().replace("score", "")] = float(metric["value"])
    return named


def _log_to_mlflow(app: Sentinel, html: Path, batches: list, snapshot, reference_version: str) -> str:
    tags = {
        "sentinel.kind": "scheduled-report",
        "sentinel.reference_version": reference_version,
        "sentinel.batches": ",".join(b.batch_id for b in batches)[:5000],
    }
    run_name = f"drift-report-{html.stem.removeprefix('drift-report-')}"
    return app.registry.log_run(app.settings.drift_experiment, run_name, tags, scores(snapshot), {}, html)
