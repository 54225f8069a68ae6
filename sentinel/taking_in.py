"""Taking files in: every settled file of the drop zone becomes a stored batch or a quarantined file
with its reason, exactly once, and each outcome is announced as a Prefect event. A quarantined file
can be put back with `requeue`."""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable
from pathlib import Path

from sentinel import events, intake, locks
from sentinel.context import Sentinel
from sentinel.errors import SentinelError
from sentinel.ledger import BatchRow

log = logging.getLogger(__name__)


def take_in(
    app: Sentinel,
    paths: list[Path] | None = None,
    checks_drift: bool = True,
    settle_timeout: float = 30.0,
    file_state: Callable[[Path], str] = lambda path: "unknown",
) -> list[intake.IntakeOutcome]:
    """Ingest every settled file in the drop zone; a file still being written is left for later. Each
    outcome is announced; the label `sentinel.check` says whether the caller checks drift itself
    ("taker") or leaves it to the drift-check deployment ("deployment"), which answers only the latter.
    `file_state` is the watcher's knowledge of each file: "writing", "complete" (closed by its writer) or
    "unknown"."""
    with locks.held(app.settings, "intake"):  # two watchers, or a watcher and reconcile, never read one file twice
        outcomes = _take_in(app, paths, settle_timeout, file_state)
    for outcome in outcomes:
        if outcome.status == "accepted":
            resource = events.batch_resource(outcome.batch_id) | {"sentinel.check": "taker" if checks_drift else "deployment"}
            events.emit(app.settings, events.BATCH_ACCEPTED, resource, {"file": outcome.file, "rows": outcome.rows})
        elif outcome.status in ("quarantined", "duplicate"):
            events.emit(
                app.settings,
                events.BATCH_QUARANTINED,
                events.batch_resource(outcome.batch_id),
                {"file": outcome.file, "status": outcome.status, "reason": outcome.reason},
            )
    return outcomes


def _take_in(
    app: Sentinel, paths: list[Path] | None, settle_timeout: float, file_state: Callable[[Path], str]
) -> list[intake.IntakeOutcome]:
    outcomes = []
    policy = app.settings.intake
    paths = paths if paths is not None else intake.pending_files(app.settings)
    if paths and (problem := intake.unwritable(app.settings)):
        # Taking a file in moves it out of the drop zone; where that cannot happen, nothing is read.
        log.error("intake paused: %s", problem["message"])
        return [intake.IntakeOutcome(intake.display_name(path), "error", reason=problem) for path in paths]
    for path in paths:
        regular = path.is_file() and not path.is_symlink()
        settle = policy.closed_settle_seconds if file_state(path) == "complete" else policy.settle_seconds
        # Looked at again after the wait: a writer may have opened the file meanwhile.
        if regular and (not intake.wait_until_settled(path, settle, settle_timeout) or file_state(path) == "writing"):
            outcomes.append(
                intake.IntakeOutcome(intake.display_name(path), "waiting", reason={"message": "the file is still being written"})
            )
            continue
        if not (path.exists() or path.is_symlink()):
            continue  # taken by another watcher meanwhile
        try:
            outcomes.append(intake.ingest(path, app.settings, app.ledger))
        except Exception as error:  # one file's trouble (a full disk, a database hiccup) never stops the rest
            log.exception("intake of %s failed; it stays in the drop zone and is tried again", intake.display_name(path))
            outcomes.append(intake.IntakeOutcome(intake.display_name(path), "error", reason=intake.failure(error, app.settings)))
    return outcomes


def requeue(app: Sentinel, name: str) -> Path:
    """Put a quarantined file (fixed by a person, or not) back into the drop zone under its own name;
    its reason stays in quarantine, renamed, so nothing is lost."""
    source = app.settings.quarantine_dir / Path(name).name
    reason_file = Path(f"{source}{intake.REASON_SUFFIX}")
    if not (source.exists() or source.is_symlink()) or not reason_file.exists():
        raise SentinelError(f"{Path(name).name} is not in {app.settings.quarantine_dir}; see `sentinel batches --quarantined`")
    reason = json.loads(reason_file.read_text())
    if reason.get("values") and "already accepted" in reason.get("message", ""):
        raise SentinelError(f"{source.name} is a duplicate of batch {reason['values'][0]}, which is learned already; nothing to requeue")
    target = app.settings.incoming_dir / Path(reason.get("file") or source.name).name  # never a path out of the drop zone
    if target.exists():
        raise SentinelError(f"{target} exists already; move or rename it first")
    target = intake.move_no_clobber(source, target)  # a file dropped under that name meanwhile is never replaced
    reason_file.rename(reason_file.with_name(f"{reason_file.name}.requeued-{dt.datetime.now(dt.timezone.utc):%Y%m%d-%H%M%S}"))
    return target


def readmit(app: Sentinel, batch_id: str) -> str:
    """A person vouches for a batch the loop kept out of training: the next retrain may learn it. A batch
    whose drift check was parked as failed (its cause fixed, presumably) is checked again."""
    with app.ledger.transaction() as session:
        batch = session.get(BatchRow, batch_id)
        if batch is None or batch.status != "accepted":
            raise SentinelError(f"{batch_id} is not an accepted batch; see `sentinel batches`")
        if batch.drift_status == "failed":
            why = batch.check_error
            batch.drift_status, batch.check_attempts, batch.check_error, batch.retry_at = "pending", 0, None, None
            return f"batch {batch_id} will be checked for drift again (its check failed {app.settings.drift.check_attempts} times: {why})"
        if not batch.excluded and not batch.suspect_labels:
            raise SentinelError(f"batch {batch_id} is not kept out of training; nothing to requeue")
        why = batch.excluded or "its labels looked inverted"
        batch.excluded, batch.suspect_labels = None, False
    return f"batch {batch_id} will be learned by the next retrain (it was kept out: {why})"
