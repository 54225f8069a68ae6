"""The loop as a whole, over what is waiting: `process` (standalone, in this process: intake, drift
checks, an interrupted promotion, one retrain), `reconcile` (the periodic sweep of `sentinel up` for
whatever an event missed) and `retrain_until_done` (what the retrain deployment runs). All work from
the ledger and are safe to run twice."""

from __future__ import annotations

from dataclasses import dataclass

from sentinel import drift_worker, intake, locks
from sentinel.context import Sentinel
from sentinel.ledger import TrainingRunRow, aware, utcnow
from sentinel.pools import ready_batches, waiting_for_pool
from sentinel.promotion import finish_promotions
from sentinel.read_models import batch_record
from sentinel.retrain_due import retrain_due
from sentinel.taking_in import take_in

# Drift checks and retrains import Evidently and scikit-learn (seconds); they are imported when there
# is a batch to check or a retrain is due, so a `process` with nothing to do stays light.


def process(app: Sentinel) -> list[dict]:
    """Everything waiting, in order: intake of every file, a drift check of every unchecked batch, a
    promotion a crash interrupted, then one retrain that takes every batch not yet learned. One record
    per file."""
    files = intake.pending_files(app.settings)
    if files or ready_batches(app):
        drift_worker.warm_up()  # the text worker starts while intake runs
    outcomes = take_in(app, files)
    if ready_batches(app):
        from sentinel.drift_checks import check_pending

        check_pending(app)
    finish_promotions(app)
    if retrain_due(app):
        from sentinel.retraining import retrain

        retrain(app)
    records = []
    waiting = waiting_for_pool(app)  # once for all records, not once a file
    for outcome in outcomes:
        record = {"file": outcome.file, "status": outcome.status, "batch_id": outcome.batch_id, "rows": outcome.rows}
        if outcome.reason:
            record["reason"] = outcome.reason
        if outcome.status == "accepted":
            record |= batch_record(app, app.ledger.batch(outcome.batch_id), waiting)
        records.append(record)
    return records


@dataclass(frozen=True)
class Reconciled:
    """What a reconcile sweep found and finished."""

    files: int
    checked: list[str]  # the batches it drift-checked
    promotions_finished: int
    runs: list[TrainingRunRow]  # the retrains it ran

    def counts(self) -> dict[str, int]:
        """How much of each, as the flow run returns it."""
        return {
            "files": self.files,
            "checked": len(self.checked),
            "promotions_finished": self.promotions_finished,
            "retrains": len(self.runs),
        }


def reconcile(app: Sentinel) -> Reconciled:
    """Catch whatever an event missed: files still in the drop zone, batches nobody is checking, a promotion
    a crash interrupted, drift that no retrain answered. Safe at any time: each step takes its lock and
    works from the ledger."""
    taken = app.steps("take-in", "take in the drop zone's files", take_in, app)
    checked = []
    if ready_batches(app) and not checks_under_way(app, app.settings.up.reconcile_seconds):
        from sentinel.drift_checks import check_pending

        checked = check_pending(app, timeout=0)
    finished = finish_promotions(app) or []  # before a retrain, which compares with the champion
    runs = retrain_until_done(app)
    return Reconciled(len(taken), checked, len(finished), runs)


def checks_under_way(app: Sentinel, within: float) -> bool:
    """True when a drift check was recorded in the last `within` seconds: someone (the watcher of `sentinel
    up`, a drift-check run) is working through the waiting batches and takes the rest too. Reconcile
    leaves those to it: the watcher frees the drift lock between its flow runs, and a reconcile that took
    the lock there checked the backlog in a cold process of its own beside the idle warm watcher, 213 of
    300 batches in one measured run, and then retrained in that same process (docs/performance.md). A
    checker that died is stood in for one interval later."""
    last = app.ledger.last_drift_check_at()
    return last is not None and (utcnow() - aware(last)).total_seconds() < within


def retrain_until_done(app: Sentinel, actor: str = "sentinel") -> list[TrainingRunRow]:
    """What the retrain deployment does: let a burst settle, retrain, and again while drift detected
    meanwhile is still unanswered. A second caller leaves at once: the first one takes its work.

    The lock and the question come before what a retrain imports (scikit-learn, MLflow: about 80 MB
    in a process): a burst's later detections start runs that find the work taken or done, and they
    ran beside the real retrain at the peak memory of `sentinel up`.

    One at a time is enforced by `locks.held`, not by Prefect's deployment concurrency limit: the limit's
    slot is held by a lease the server keeps in memory, and after a run was killed and the server
    restarted, the slot stayed taken and every later run was cancelled ("Deployment concurrency limit
    reached"). A file lock or an advisory lock is freed with the process that held it."""
    runs = []
    with locks.held(app.settings, "retrain", timeout=0) as acquired:
        while acquired and retrain_due(app):
            from sentinel.retraining import settle_and_retrain

            runs.append(settle_and_retrain(app, actor))
    return runs
