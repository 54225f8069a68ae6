"""Checking drift: each accepted batch is measured once against the champion's reference (Evidently's
text, label and descriptor drift, and the champion's accuracy on the batch), logged as an MLflow run,
recorded in the ledger and announced as `sentinel.drift.detected` or `sentinel.drift.clear`."""

from __future__ import annotations

import datetime as dt
import functools
import logging
from pathlib import Path

import pandas as pd

from sentinel import drift, events, failpoints, intake, locks, shadow, triggers
from sentinel.context import Sentinel
from sentinel.errors import TamperedModel, expected_failure
from sentinel.ledger import BatchRow, DriftCheckRow, ModelRow, utcnow
from sentinel.pools import ready_units
from sentinel.references import champion_reference

log = logging.getLogger(__name__)


def check_drift(app: Sentinel, batch_id: str) -> drift.DriftVerdict | None:
    """Measure one accepted batch alone against the champion's reference; None if it was checked already."""
    row = app.ledger.batch(batch_id)
    return check_unit(app, [row]) if row is not None else None


def check_unit(
    app: Sentinel, members: list[BatchRow], complete: bool = True, champion: ModelRow | None = None
) -> drift.DriftVerdict | None:
    """Measure a batch, or a pool of small batches as one sample, against the champion's reference and
    record the verdict on every member. None if they were checked already. `complete` is False for a
    pool measured short of `intake.min_rows` because it waited too long; its record says so. `champion`:
    the champion as the caller just read it (else it is read here)."""
    members = [m for m in members if m.status == "accepted" and m.drift_status == "pending"]
    if not members:
        return None
    champion = champion or app.require_champion()
    reference, calibration = champion_reference(app, champion)
    model = app.load_model(champion)
    frame = _unit_frame(members)
    ids = [m.batch_id for m in members]
    name = ids[0] if len(ids) == 1 else f"{ids[0]}+{len(ids) - 1}"
    pool = None if len(ids) == 1 else {"members": ids, "rows": len(frame), "complete": complete}
    report = check_report_path(app, name)
    scorer = drift.Scorer(f"v{champion.version} {champion.artifact_sha256}", model)
    workspace, title = app.settings.evidently_dir, f"drift check {name} vs v{champion.version}"
    run = _start_drift_run(app, name, champion.version, pool)
    try:
        start_next = functools.partial(_start_next, app, ids, reference, scorer)
        verdict = drift.measure(frame, reference, calibration, scorer, app.settings.drift, report, workspace, title, start_next)
        trigger = _trigger(app, champion.version, calibration, verdict, len(frame))
    except BaseException:
        app.registry.abandon_run(run)
        raise
    run_id = _finish_drift_run(app, run, verdict, report, trigger)
    failpoints.reach("drift.logged")
    # Before anything learns this batch, it is a free test set for the challenger still gathering evidence.
    looked = None if verdict.suspect_labels else shadow.evaluate(app, champion, frame, verdict.champion_predictions, ids)
    with app.ledger.transaction() as session:
        batches = [session.get(BatchRow, batch_id, with_for_update=True) for batch_id in ids]
        if any(b.drift_status != "pending" for b in batches):
            return None  # another process finished first; its record stands
        signals = verdict.as_dict()["signals"]
        for batch in batches:
            session.add(
                DriftCheckRow(
                    batch_id=batch.batch_id,
                    reference_version=champion.version,
                    detected=verdict.detected,
                    signals=signals,
                    report_path=str(report),
                    mlflow_run_id=run_id,
                    pool=pool,
                    trigger=trigger.as_dict(),
                    shadow=looked,
                )
            )
            # detected: a retrain is due (or the labels look inverted, which no retrain learns); harmless:
            # drift that the trigger policy lets pass, learned by the next retrain.
            detected = trigger.fired or (verdict.detected and verdict.suspect_labels)
            batch.drift_status = "detected" if detected else "harmless" if verdict.detected else "clear"
            batch.suspect_labels = verdict.suspect_labels
    scores = {s.name: s.score for s in verdict.signals}
    event = events.DRIFT_DETECTED if trigger.fired else events.DRIFT_CLEAR  # detected: a retrain is due
    for batch_id in ids:
        payload = {
            "scores": scores,
            "drifted": verdict.detected,
            "trigger": trigger.why,
            "suspect_labels": verdict.suspect_labels,
            "reference_version": champion.version,
            "pool": pool,
        }
        events.emit(app.settings, event, events.batch_resource(batch_id), payload)
    return verdict


def check_report_path(app: Sentinel, name: str) -> Path:
    """Where the check of the unit `name` keeps its report: the snapshot's JSON by default, whose HTML
    `sentinel report --batch` renders when a person asks (`drift.check_report`). Rendering it for every
    check cost 23-65 ms of CPU and 7.5 MB of disk, twice 3.76 MB with the MLflow run's copy, where the
    JSON is 0.2 MB and serialised once with the workspace's (docs/performance.md)."""
    suffix = "html" if app.settings.drift.check_report == "html" else "json"
    return app.settings.reports_dir / "drift" / f"drift-{name}.{suffix}"


def _unit_frame(members: list[BatchRow]) -> pd.DataFrame:
    return pd.concat([intake.load_batch_frame(m.stored_path) for m in members], ignore_index=True)


def _start_next(app: Sentinel, ids: list[str], reference: pd.DataFrame, scorer: drift.Scorer) -> None:
    """With a backlog, the worker starts measuring the next unit's text (and predicting it) while this
    process writes the current one's report and records it (`drift.measure` calls this as soon as the
    worker is free). Only a head start: any failure here is met again, and reported, by that unit's own
    check."""
    if not drift.can_start_ahead():
        return
    try:
        following = next((unit for unit in ready_units(app) if not {m.batch_id for m in unit} & set(ids)), None)
        if following is not None:
            drift.start_ahead(_unit_frame(following), reference, scorer)
    except Exception:
        log.debug("no head start for the next drift check", exc_info=True)


def check_pending(app: Sentinel, timeout: float = 900.0, limit: int | None = None) -> list[str]:
    """Check every batch ready for its drift check (at most `limit` checks, oldest first), including those
    accepted meanwhile. A second caller waits (up to `timeout`) for the first and then finds nothing left,
    so a batch is measured once. Returns the ids of the batches checked."""
    checked: list[str] = []
    checks = 0
    with locks.held(app.settings, "drift", timeout) as acquired:
        if not acquired:
            return checked  # someone else is checking, and takes every pending batch
        while (limit is None or checks < limit) and (units := ready_units(app)):
            # The champion is read once per round of units, not per unit: a check a few hundred ms later
            # would be as stale, and each read is a round trip to MLflow (4.5 % of the watcher's time).
            champion = app.require_champion()
            for unit in units[: None if limit is None else limit - checks]:
                complete = sum(m.rows for m in unit) >= app.settings.intake.min_rows
                name = unit[0].file_name if len(unit) == 1 else f"a pool of {len(unit)} batches"
                try:
                    if app.steps("check-drift", f"check drift of {name}", check_unit, app, unit, complete, champion) is not None:
                        checked += [m.batch_id for m in unit]
                except Exception as error:
                    if not _the_batchs_own(error):
                        raise  # MLflow, the ledger or the champion failed: the whole sweep is tried again later
                    log.exception("drift check of %s failed", ", ".join(m.batch_id for m in unit))
                    record_failure(app, unit, error)
                checks += 1
    return checked


def _the_batchs_own(error: Exception) -> bool:
    """True for a failure that belongs to the batch measured (its data, or a bug it triggers), which is
    retried and then parked so the batches behind it go on; False for a part every batch needs."""
    return expected_failure(error) is None and not isinstance(error, TamperedModel)


def record_failure(app: Sentinel, unit: list[BatchRow], error: Exception) -> None:
    """Count a failed check on each member: tried again after a back-off that doubles, parked as
    `failed` after `drift.check_attempts` tries (visible in `batches` and `doctor`; `sentinel requeue`)."""
    policy = app.settings.drift
    what = (str(error).strip().splitlines() or [""])[0][:500]
    with app.ledger.transaction() as session:
        for member in unit:
            batch = session.get(BatchRow, member.batch_id)
            batch.check_attempts = (batch.check_attempts or 0) + 1
            batch.check_error = f"{type(error).__name__}: {what}"
            if batch.check_attempts >= policy.check_attempts:
                batch.drift_status, batch.retry_at = "failed", None
            else:
                batch.retry_at = utcnow() + dt.timedelta(seconds=policy.check_retry_seconds * 2 ** (batch.check_attempts - 1))


def _trigger(
    app: Sentinel, reference_version: str, calibration: drift.Calibration, verdict: drift.DriftVerdict, rows: int
) -> triggers.Trigger:
    """The retrain rule of the settings applied to this verdict and the champion's recent accuracy."""
    policy = app.settings.drift
    accuracy = None
    if verdict.champion_accuracy is not None:
        accuracy = triggers.Accuracy(verdict.champion_accuracy, rows, calibration.expected_accuracy, calibration.expected_rows)
    earlier, seen = [], set()
    # Only the sustained rule looks back; the others spare every check this read of the ledger.
    history = app.ledger.recent_drift_checks(reference_version, 4 * policy.sustain_batches) if policy.trigger == "sustained" else []
    for check in history:
        measured = (check.trigger or {}).get("accuracy")
        if measured and check.mlflow_run_id not in seen:  # the members of a pool share one measurement
            seen.add(check.mlflow_run_id)
            earlier.append(triggers.Accuracy(**measured))
    return triggers.decide(verdict, policy, accuracy, earlier)


def _start_drift_run(app: Sentinel, name: str, reference_version: str, pool: dict | None):
    """The check's MLflow run, created while the check measures (see `Registry.start_run`)."""
    tags = {
        "sentinel.batch": name,
        "sentinel.pool": ",".join(pool["members"]) if pool else "",
        "sentinel.reference_version": reference_version,
    }
    return app.registry.start_run(app.settings.drift_experiment, f"drift-{name}", tags)


def _finish_drift_run(app: Sentinel, run, verdict: drift.DriftVerdict, report: Path, trigger: triggers.Trigger) -> str:
    tags = {
        "sentinel.detected": str(verdict.detected).lower(),
        "sentinel.suspect_labels": str(verdict.suspect_labels).lower(),
        "sentinel.retrain_due": str(trigger.fired).lower(),
        "sentinel.trigger": trigger.why[:500],
    }
    metrics = {f"{s.name}_score": s.score for s in verdict.signals} | {f"{s.name}_threshold": s.threshold for s in verdict.signals}
    params = {f"{s.name}_method": s.method[:500] for s in verdict.signals}
    return app.registry.finish_run(run, tags, metrics, params, report)
