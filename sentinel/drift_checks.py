"""Checking drift: each accepted batch is measured once against the champion's reference (Evidently's
text, label and descriptor drift, and the champion's accuracy on the batch), logged as an MLflow run,
recorded in the ledger and announced as `sentinel.drift.detected` or `sentinel.drift.clear`."""

from __future__ import annotations

from pathlib import Path

from sentinel import drift, events, failpoints, intake, locks
from sentinel.context import Sentinel
from sentinel.ledger import BatchRow, DriftCheckRow
from sentinel.references import champion_reference


def check_drift(app: Sentinel, batch_id: str) -> drift.DriftVerdict | None:
    """Measure one accepted batch against the champion's reference; None if it was checked already."""
    row = app.ledger.batch(batch_id)
    if row is None or row.status != "accepted" or row.drift_status != "pending":
        return None
    champion = app.require_champion()
    reference, calibration = champion_reference(app, champion)
    model = app.load_model(champion)
    frame = intake.load_batch_frame(row.stored_path)
    report = app.settings.reports_dir / "drift" / f"drift-{batch_id}.html"
    verdict = drift.measure(frame, reference, calibration, lambda f: model.predict(f[["text"]]), app.settings.drift, report)
    run_id = _log_drift_run(app, batch_id, champion.version, verdict, report)
    failpoints.reach("drift.logged")
    with app.ledger.transaction() as session:
        batch = session.get(BatchRow, batch_id, with_for_update=True)
        if batch.drift_status != "pending":
            return None  # another process finished first; its record stands
        session.add(
            DriftCheckRow(
                batch_id=batch_id,
                reference_version=champion.version,
                detected=verdict.detected,
                signals=verdict.as_dict()["signals"],
                report_path=str(report),
                mlflow_run_id=run_id,
            )
        )
        batch.drift_status = "detected" if verdict.detected else "clear"
        batch.suspect_labels = verdict.suspect_labels
    scores = {s.name: s.score for s in verdict.signals}
    event = events.DRIFT_DETECTED if verdict.detected else events.DRIFT_CLEAR
    events.emit(
        app.settings,
        event,
        events.batch_resource(batch_id),
        {"scores": scores, "suspect_labels": verdict.suspect_labels, "reference_version": champion.version},
    )
    return verdict


def check_pending(app: Sentinel, timeout: float = 900.0, limit: int | None = None) -> list[str]:
    """Check every batch awaiting its drift check (at most `limit`, oldest first), including those accepted
    meanwhile. A second caller waits (up to `timeout`) for the first and then finds nothing left, so a
    batch is measured once."""
    checked: list[str] = []
    with locks.held(app.settings, "drift", timeout) as acquired:
        if not acquired:
            return checked  # someone else is checking, and takes every pending batch
        while (limit is None or len(checked) < limit) and (pending := app.ledger.batches_awaiting_drift_check()):
            app.require_champion()
            for row in pending[: None if limit is None else limit - len(checked)]:
                if check_drift(app, row.batch_id) is not None:
                    checked.append(row.batch_id)
    return checked


def _log_drift_run(app: Sentinel, batch_id: str, reference_version: str, verdict: drift.DriftVerdict, report: Path) -> str:
    import mlflow

    experiment = app.registry.experiment_id(app.settings.drift_experiment)
    with mlflow.start_run(experiment_id=experiment, run_name=f"drift-{batch_id}") as run:
        mlflow.set_tags(
            {
                "sentinel.batch": batch_id,
                "sentinel.reference_version": reference_version,
                "sentinel.detected": str(verdict.detected).lower(),
                "sentinel.suspect_labels": str(verdict.suspect_labels).lower(),
            }
        )
        mlflow.log_metrics(
            {f"{s.name}_score": s.score for s in verdict.signals} | {f"{s.name}_threshold": s.threshold for s in verdict.signals}
        )
        mlflow.log_params({f"{s.name}_method": s.method[:500] for s in verdict.signals})
        if report.exists():
            mlflow.log_artifact(str(report), artifact_path="reports")
        return run.info.run_id
