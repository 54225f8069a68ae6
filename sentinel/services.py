"""The loop's use cases, each one call: bootstrap a champion, take in files, check drift, retrain and
gate, move aliases. Flows and the CLI call these; every one reads its work from the ledger and is safe
to run twice."""

from __future__ import annotations

import datetime as dt
import getpass
import hashlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import pandas as pd

from sentinel import drift, events, failpoints, gate, intake, locks, training
from sentinel.errors import SentinelError
from sentinel.ledger import AliasMoveRow, BatchDigest, BatchRow, DriftCheckRow, Ledger, ModelRow, TrainingRunRow, utcnow
from sentinel.settings import Settings

log = logging.getLogger(__name__)


def os_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry in some containers
        return "unknown"


@dataclass
class Sentinel:
    """One project: its settings, ledger and (lazily, since MLflow is slow to import) its registry."""

    settings: Settings
    ledger: Ledger = field(init=False)

    def __post_init__(self) -> None:
        self.settings.ensure_dirs()
        self.ledger = Ledger(self.settings.ledger_url)

    @cached_property
    def registry(self):
        from sentinel.registry import Registry

        return Registry(self.settings)

    def close(self) -> None:
        self.ledger.dispose()

    # ---- champion -----------------------------------------------------------------------------
    def champion(self) -> ModelRow | None:
        version = self.registry.alias_version("champion")
        return self.ledger.model(self.settings.registered_model, version) if version else None

    def require_champion(self) -> ModelRow:
        champion = self.champion()
        if champion is None:
            raise SentinelError("there is no champion yet: run `sentinel bootstrap --reference FILE.csv` (or `sentinel demo`)")
        return champion

    def load_model(self, row: ModelRow):
        return self.registry.load(row.version, row.artifact_sha256)

    def champion_reference(self, champion: ModelRow) -> tuple[pd.DataFrame, drift.Calibration]:
        # A champion whose promotion a crash cut short, or whose alias a person moved in the MLflow UI,
        # may have no reference yet: build it once rather than fail every drift check.
        champion = ensure_reference(self, champion)
        return pd.read_parquet(champion.reference_path), drift.Calibration(**champion.calibration)


# ---- bootstrap ----------------------------------------------------------------------------------
def bootstrap(app: Sentinel, reference_csv: Path, actor: str | None = None) -> ModelRow:
    """Train the first champion on a labeled CSV and make that data the drift reference."""
    existing = app.champion()
    if existing is not None:
        raise SentinelError(f"a champion exists already (version {existing.version}); bootstrap only starts an empty project")
    if not reference_csv.is_file():
        raise SentinelError(f"reference file not found: {reference_csv}")
    raw = reference_csv.read_bytes()
    try:
        frame = intake.parse_batch(raw, app.settings.intake.model_copy(update={"max_text_chars": 10**7}))
    except intake.RejectedFile as rejected:
        raise SentinelError(f"the reference {reference_csv.name} is not usable: {rejected.problem.message}; {rejected.problem.fix}") from None
    sha256 = hashlib.sha256(raw).hexdigest()
    batch_id = "ref-" + intake.new_batch_id()
    stored, _ = intake.store(batch_id, frame, raw, app.settings)
    with app.ledger.transaction() as session:
        session.add(BatchRow(batch_id=batch_id, file_name=reference_csv.name, sha256=sha256, rows=len(frame), status="accepted", stored_path=str(stored), drift_status="none"))
        session.flush()
        if session.get(BatchDigest, sha256) is None:
            session.add(BatchDigest(sha256=sha256, batch_id=batch_id))
    data = training.assemble({batch_id: frame}, {}, app.settings.gate.holdout_share, app.settings.gate.reference_holdout_rows)
    return _train_and_register(app, data, run_name=f"bootstrap-{batch_id}", champion=None, actor=actor or os_user())


# ---- intake + drift -----------------------------------------------------------------------------
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
            events.emit(app.settings, events.BATCH_QUARANTINED, events.batch_resource(outcome.batch_id), {"file": outcome.file, "status": outcome.status, "reason": outcome.reason})
    return outcomes


def _take_in(app: Sentinel, paths: list[Path] | None, settle_timeout: float, file_state: Callable[[Path], str]) -> list[intake.IntakeOutcome]:
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
            outcomes.append(intake.IntakeOutcome(intake.display_name(path), "waiting", reason={"message": "the file is still being written"}))
            continue
        if not (path.exists() or path.is_symlink()):
            continue  # taken by another watcher meanwhile
        try:
            outcomes.append(intake.ingest(path, app.settings, app.ledger))
        except Exception as error:  # one file's trouble (a full disk, a database hiccup) never stops the rest
            log.exception("intake of %s failed; it stays in the drop zone and is tried again", intake.display_name(path))
            outcomes.append(intake.IntakeOutcome(intake.display_name(path), "error", reason=intake.failure(error, app.settings)))
    return outcomes


def check_drift(app: Sentinel, batch_id: str) -> drift.DriftVerdict | None:
    """Measure one accepted batch against the champion's reference; None if it was checked already."""
    row = app.ledger.batch(batch_id)
    if row is None or row.status != "accepted" or row.drift_status != "pending":
        return None
    champion = app.require_champion()
    reference, calibration = app.champion_reference(champion)
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
        session.add(DriftCheckRow(batch_id=batch_id, reference_version=champion.version, detected=verdict.detected, signals=verdict.as_dict()["signals"], report_path=str(report), mlflow_run_id=run_id))
        batch.drift_status = "detected" if verdict.detected else "clear"
        batch.suspect_labels = verdict.suspect_labels
    scores = {s.name: s.score for s in verdict.signals}
    event = events.DRIFT_DETECTED if verdict.detected else events.DRIFT_CLEAR
    events.emit(app.settings, event, events.batch_resource(batch_id), {"scores": scores, "suspect_labels": verdict.suspect_labels, "reference_version": champion.version})
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
        mlflow.set_tags({"sentinel.batch": batch_id, "sentinel.reference_version": reference_version, "sentinel.detected": str(verdict.detected).lower(), "sentinel.suspect_labels": str(verdict.suspect_labels).lower()})
        mlflow.log_metrics({f"{s.name}_score": s.score for s in verdict.signals} | {f"{s.name}_threshold": s.threshold for s in verdict.signals})
        mlflow.log_params({f"{s.name}_method": s.method[:500] for s in verdict.signals})
        if report.exists():
            mlflow.log_artifact(str(report), artifact_path="reports")
        return run.info.run_id


# ---- retrain + gate -----------------------------------------------------------------------------
def batches_to_learn(app: Sentinel, champion: ModelRow) -> list[BatchRow]:
    """Accepted, drift-checked batches the champion has not learned, minus suspect ones and those a
    rejected challenger learned (their data made a worse model)."""
    learned = set(champion.batch_ids)
    rejected_runs = {r.id for r in app.ledger.training_runs() if r.decision == "rejected"}
    return [
        b
        for b in app.ledger.batches(status="accepted")
        if b.batch_id not in learned and b.drift_status in ("detected", "clear") and not b.suspect_labels and b.trained_in not in rejected_runs
    ]


def retrain_due(app: Sentinel) -> bool:
    """A drift verdict that no retrain has answered yet."""
    return bool(app.ledger.unanswered_drift())


def backlog(app: Sentinel) -> int:
    """Files in the drop zone plus batches still awaiting their drift check."""
    return len(intake.pending_files(app.settings)) + len(app.ledger.batches_awaiting_drift_check())


def wait_for_quiet(app: Sentinel, quiet_seconds: float, max_wait_seconds: float, poll: float = 0.5) -> float:
    """Wait until the backlog has been empty for `quiet_seconds` (at most `max_wait_seconds`), so that a
    burst of files becomes one retrain that learns them all. Returns the seconds waited."""
    started = last_busy = time.monotonic()
    while (now := time.monotonic()) - started < max_wait_seconds:
        if backlog(app):
            last_busy = now
        elif now - last_busy >= quiet_seconds:
            break
        time.sleep(poll)
    return time.monotonic() - started


def retrain_until_done(app: Sentinel, actor: str = "sentinel") -> list[TrainingRunRow]:
    """What the retrain deployment does: let a burst settle, retrain, and again while drift detected
    meanwhile is still unanswered. A second caller leaves at once: the first one takes its work.

    One at a time is enforced by `locks.held`, not by Prefect's deployment concurrency limit: the limit's
    slot is held by a lease the server keeps in memory, and after a run was killed and the server
    restarted, the slot stayed taken and every later run was cancelled ("Deployment concurrency limit
    reached"). A file lock or an advisory lock is freed with the process that held it."""
    policy = app.settings.services
    runs = []
    with locks.held(app.settings, "retrain", timeout=0) as acquired:
        while acquired and retrain_due(app):
            wait_for_quiet(app, policy.retrain_quiet_seconds, policy.retrain_max_wait_seconds)
            runs.append(_retrain(app, actor))
    return runs


def retrain(app: Sentinel, actor: str = "sentinel") -> TrainingRunRow | None:
    """Train a challenger on the champion's data plus every batch not yet learned, gate it, register it.
    One at a time: a second caller returns None at once, and the running one takes all pending work."""
    with locks.held(app.settings, "retrain", timeout=0) as acquired:
        return _retrain(app, actor) if acquired and retrain_due(app) else None


def _retrain(app: Sentinel, actor: str) -> TrainingRunRow:
    champion = app.require_champion()
    data = training_data(app, champion)
    run_name = "retrain-" + _name_batches(data.new_batches)
    model = _train_and_register(app, data, run_name=run_name, champion=champion, actor=actor)
    run = app.ledger.training_run(model.training_run_id)
    _announce(app, run, model)
    return run


def _announce(app: Sentinel, run: TrainingRunRow, model: ModelRow) -> None:
    resource = events.model_resource(model.model_name, model.version)
    payload = {"run_name": run.run_name, "decision": run.decision, "reason": run.reason, "batches": list(run.batch_ids), "mlflow_run_id": run.mlflow_run_id}
    events.emit(app.settings, events.RETRAIN_COMPLETED, resource, payload)
    decision_event = {"promoted": events.MODEL_PROMOTED, "challenger": events.MODEL_CHALLENGER, "rejected": events.MODEL_REJECTED}[run.decision]
    events.emit(app.settings, decision_event, resource, payload)


def reconcile(app: Sentinel) -> dict:
    """Catch whatever an event missed: files still in the drop zone, batches never checked, a promotion a
    crash interrupted, drift that no retrain answered. Safe at any time: each step takes its lock and
    works from the ledger."""
    taken = take_in(app)
    checked = check_pending(app, timeout=0)
    finished = finish_promotions(app) or []  # before a retrain, which compares with the champion
    runs = retrain_until_done(app) if retrain_due(app) else []
    return {"files": len(taken), "checked": len(checked), "promotions_finished": len(finished), "retrains": len(runs)}


def training_data(app: Sentinel, champion: ModelRow) -> training.TrainingData:
    """The champion's batches plus every batch it has not learned, split into training and held-out rows."""
    def frames(rows: list[BatchRow | None]) -> dict[str, pd.DataFrame]:
        return {r.batch_id: intake.load_batch_frame(r.stored_path) for r in rows if r is not None}

    old = frames([app.ledger.batch(b) for b in champion.batch_ids])
    fresh = frames(batches_to_learn(app, champion))
    return training.assemble(old, fresh, app.settings.gate.holdout_share, app.settings.gate.reference_holdout_rows)


def _name_batches(batch_ids: tuple[str, ...]) -> str:
    if len(batch_ids) <= 3:
        return "+".join(batch_ids)
    return f"{batch_ids[0]}..{batch_ids[-1]}({len(batch_ids)})"


def _train_and_register(app: Sentinel, data: training.TrainingData, *, run_name: str, champion: ModelRow | None, actor: str) -> ModelRow:
    # The drift reference a promotion needs depends on the training rows only: build it in the
    # worker while the model fits here. Whatever happens, its answer is read, so the worker is free.
    reference_job = drift.ReferenceJob(data.train, app.settings.drift, seed=app.settings.model.seed)
    try:
        return _fit_gate_register(app, data, reference_job, run_name=run_name, champion=champion, actor=actor)
    finally:
        reference_job.discard()


def _fit_gate_register(
    app: Sentinel, data: training.TrainingData, reference_job: drift.ReferenceJob, *, run_name: str, champion: ModelRow | None, actor: str
) -> ModelRow:
    import mlflow

    from sentinel import reporting

    settings = app.settings
    started = utcnow()
    experiment = app.registry.experiment_id(settings.training_experiment)
    with mlflow.start_run(experiment_id=experiment, run_name=run_name) as run:
        mlflow.set_tags({"sentinel.batches": ",".join(data.new_batches) or "reference", "sentinel.trigger": "bootstrap" if champion is None else "drift"})
        mlflow.log_params(settings.model.model_dump() | {"train_rows": len(data.train), "holdout_new_rows": len(data.holdout_new), "holdout_reference_rows": len(data.holdout_reference)})
        reporting.log_inputs(data)
        tick = time.perf_counter()
        model = training.fit(data.train, settings.model)
        mlflow.log_metric("fit_seconds", time.perf_counter() - tick)

        challenger_new = training.evaluate(model, data.holdout_new)
        challenger_ref = training.evaluate(model, data.holdout_reference)
        mlflow.log_metrics(challenger_new.metrics("new") | challenger_ref.metrics("reference"))

        def judge(champion_version: str) -> gate.Decision:
            """The gate: this run's model against a champion, on the same held-out rows."""
            champion_model = app.load_model(app.ledger.model(settings.registered_model, champion_version))
            champion_new = training.evaluate(champion_model, data.holdout_new)
            champion_ref = training.evaluate(champion_model, data.holdout_reference)
            if mlflow.active_run():
                mlflow.log_metrics(champion_new.metrics("champion_new") | champion_ref.metrics("champion_reference"))
            return gate.decide(
                gate.SliceScores(champion_new.y_true, champion_new.y_pred, challenger_new.y_pred),
                gate.SliceScores(champion_ref.y_true, champion_ref.y_pred, challenger_ref.y_pred),
                settings.gate,
            )

        if champion is None:
            decision = None
        else:
            decision = judge(champion.version)
            mlflow.log_metrics({k: v for k, v in decision.as_dict().items() if isinstance(v, float)})
            mlflow.set_tag("sentinel.decision", decision.decision)
        reporting.log_curves(challenger_new if challenger_new.rows else challenger_ref)
        model_uri, digest = app.registry.log_model(model, data.train[["text"]].head(5))

        drift_scores = _drift_scores(app, data.new_batches)
        outcome = "promoted" if decision is None else decision.decision
        reason = f"first champion, trained on {data.learned_batches[0]}" if decision is None else decision.reason
        tags = {
            "role": "champion" if outcome == "promoted" else outcome,
            "decision": outcome,
            "reason": reason,
            "batches": ",".join(data.new_batches) or data.learned_batches[0],
            "trained_rows": len(data.train),
            "drift_text": drift_scores.get("text"),
            "drift_label": drift_scores.get("label"),
            "f1_reference": challenger_ref.f1,
        }
        if decision is not None:
            tags |= decision_tags(decision)
        version = app.registry.register(model_uri, tags | {"model_sha256": digest})
        failpoints.reach("retrain.registered")

    with app.ledger.transaction() as session:
        run_row = TrainingRunRow(
            run_name=run_name,
            mlflow_run_id=run.info.run_id,
            batch_ids=list(data.new_batches),
            trained_rows=len(data.train),
            started_at=started,
            finished_at=utcnow(),
            model_version=version,
            decision=outcome,
            reason=reason,
            comparison=decision.as_dict() | {"champion_version": champion.version} if decision else {"f1_reference": challenger_ref.f1, "accuracy_reference": challenger_ref.accuracy},
        )
        session.add(run_row)
        session.flush()
        for batch_id in data.new_batches:
            session.get(BatchRow, batch_id).trained_in = run_row.id
        session.add(ModelRow(model_name=settings.registered_model, version=version, mlflow_run_id=run.info.run_id, training_run_id=run_row.id, batch_ids=list(data.learned_batches), artifact_sha256=digest, decision=outcome))

    failpoints.reach("retrain.recorded")
    if outcome == "promoted":
        held = [e for e in (challenger_new, challenger_ref) if e.rows]
        expected = sum(e.accuracy * e.rows for e in held) / sum(e.rows for e in held)
        _store_reference(app, version, *reference_job.result(expected))
        claim_champion(app, version, champion.version if champion else None, judge, actor, reason, run_row.id)
    elif outcome == "challenger":
        with locks.promotion_lock(settings):
            move_alias(app, "challenger", version, actor, reason)
    return app.ledger.model(settings.registered_model, version)


def stranded_promotions(app: Sentinel) -> list[ModelRow]:
    """Versions the gate promoted that never held the champion alias: a retrain stopped between its
    ledger commit and the alias move (a kill, a restart of `sentinel up`)."""
    crowned = {m.to_version for m in app.ledger.alias_moves(app.settings.registered_model) if m.alias == "champion"}
    crowned.add(app.registry.alias_version("champion"))
    return [m for m in app.ledger.models(app.settings.registered_model) if m.decision == "promoted" and m.version not in crowned]


def ensure_reference(app: Sentinel, row: ModelRow) -> ModelRow:
    """A version that was never champion, or whose promotion stopped before its reference was written,
    has no drift reference: build it from its own training rows, with the accuracy it reaches on their
    held-out rows, as a promotion by the gate would. Returns the row as stored."""
    if row.reference_path and Path(row.reference_path).is_file():
        return row
    frames = {b: intake.load_batch_frame(app.ledger.batch(b).stored_path) for b in row.batch_ids}
    data = training.assemble(frames, {}, app.settings.gate.holdout_share, 10**9)
    expected = training.evaluate(app.load_model(row), data.holdout_reference).accuracy
    _store_reference(app, row.version, *drift.build_reference(data.train, expected, app.settings.drift, seed=app.settings.model.seed))
    return app.ledger.model(row.model_name, row.version)


def _store_reference(app: Sentinel, version: str, reference: pd.DataFrame, calibration: drift.Calibration) -> None:
    """A version's drift reference on disk (whole or not at all: a retrain and a drift check may both
    write it) and in the ledger."""
    path = app.settings.reference_dir / f"v{version}.parquet"
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    reference.to_parquet(partial, index=False)
    partial.replace(path)
    with app.ledger.transaction() as session:
        stored = session.get(ModelRow, (app.settings.registered_model, version))
        stored.reference_path, stored.calibration = str(path), calibration.__dict__


def finish_promotions(app: Sentinel, actor: str = "sentinel") -> list[str] | None:
    """Finish each promotion a crash interrupted, by the compare-and-set: champion if the champion is
    still the version it beat, else challenger, to be compared again. None while a retrain runs (what
    it has half-written is its own)."""
    with locks.held(app.settings, "retrain", timeout=0) as idle:
        if not idle:
            return None
        done = []
        for model in stranded_promotions(app):
            run = app.ledger.training_run(model.training_run_id) if model.training_run_id else None
            compared_with = (run.comparison or {}).get("champion_version") if run else None

            def stale(current: str, version: str = model.version) -> gate.Decision:
                return gate.Decision.unmeasured("challenger", f"version {current} became champion before version {version}'s promotion was completed; compare again")

            ensure_reference(app, model)  # the run may have stopped before writing it
            outcome = claim_champion(app, model.version, compared_with, stale, actor, run.reason if run else "promotion completed after a restart", model.training_run_id)
            done.append(f"version {model.version}: {outcome}")
        return done


def decision_tags(decision: gate.Decision) -> dict:
    """The gate's numbers as version tags; a number it did not measure is left out, not written as nan."""
    numbers = {k: getattr(decision, k) for k in ("f1_new", "f1_champion", "f1_delta", "ci_low", "ci_high", "p_value")}
    return {k: v for k, v in numbers.items() if v == v}


def claim_champion(
    app: Sentinel, version: str, compared_with: str | None, judge: Callable[[str], gate.Decision], actor: str, reason: str, run_id: int | None = None
) -> str:
    """The compare-and-set MLflow lacks for the champion alias. Under the promotion lock, `version` (which
    beat `compared_with`) becomes champion if the champion is still `compared_with`. If another version
    took it meanwhile (a concurrent retrain, a person), `judge` compares with that one and its decision
    stands, so the later model must beat the newer champion too. Returns the outcome."""
    with locks.promotion_lock(app.settings):
        current = app.registry.alias_version("champion")
        outcome = "promoted"
        if current not in (compared_with, None, version):
            decision = judge(current)
            outcome = decision.decision
            reason = f"compared again with version {current}, champion since this run began: {decision.reason}"
            app.registry.set_tags(version, {"role": "champion" if outcome == "promoted" else outcome, "decision": outcome, "reason": reason} | decision_tags(decision))
            with app.ledger.transaction() as session:
                session.get(ModelRow, (app.settings.registered_model, version)).decision = outcome
                if run_id is not None:
                    run = session.get(TrainingRunRow, run_id)
                    run.decision, run.reason, run.comparison = outcome, reason, decision.as_dict() | {"champion_version": current}
        if outcome == "promoted":
            if current != version:
                move_alias(app, "champion", version, actor, reason)
            if app.registry.alias_version("challenger") == version:
                app.registry.delete_alias("challenger")
        elif outcome == "challenger":
            move_alias(app, "challenger", version, actor, reason)
    return outcome


def _drift_scores(app: Sentinel, batch_ids: tuple[str, ...]) -> dict[str, float]:
    """The largest text and label drift scores among the batches that caused this run."""
    scores: dict[str, float] = {}
    for batch_id in batch_ids:
        for check in app.ledger.drift_checks(batch_id):
            for signal in check.signals:
                if signal["name"] in ("text", "label"):
                    scores[signal["name"]] = max(scores.get(signal["name"], float("-inf")), signal["score"])
    return scores


def move_alias(app: Sentinel, alias: str, version: str | None, actor: str, reason: str) -> None:
    """Move an alias in MLflow and record the move in the ledger. Call inside `promotion_lock`. The role
    tag follows the alias (the version that gains it takes the role, the one that loses it becomes
    `former-…`), so the registry page stays true."""
    previous = app.registry.alias_version(alias)
    if version is None:
        app.registry.delete_alias(alias)
    else:
        app.registry.set_alias(alias, version)
        app.registry.set_tags(version, {"role": alias})
    failpoints.reach("alias.moved")
    if previous and previous != version:
        app.registry.set_tags(previous, {"role": f"former-{alias}"})
    with app.ledger.transaction() as session:
        session.add(AliasMoveRow(model_name=app.settings.registered_model, alias=alias, from_version=previous, to_version=version, actor=actor, reason=reason, moved_at=utcnow()))


# ---- the standalone loop ------------------------------------------------------------------------
def process(app: Sentinel) -> list[dict]:
    """Everything waiting, in order: intake of every file, a drift check of every unchecked batch, a
    promotion a crash interrupted, then one retrain that takes every batch not yet learned. One record
    per file."""
    files = intake.pending_files(app.settings)
    if files or app.ledger.batches_awaiting_drift_check():
        drift.warm_up()  # the text worker starts while intake runs
    outcomes = take_in(app, files)
    check_pending(app)
    finish_promotions(app)
    if retrain_due(app):
        retrain(app)
    records = []
    for outcome in outcomes:
        record = {"file": outcome.file, "status": outcome.status, "batch_id": outcome.batch_id, "rows": outcome.rows}
        if outcome.reason:
            record["reason"] = outcome.reason
        if outcome.status == "accepted":
            record |= batch_record(app, app.ledger.batch(outcome.batch_id))
        records.append(record)
    return records


def batch_record(app: Sentinel, row: BatchRow) -> dict:
    """One batch as the CLI shows it: intake, drift verdict, and the retrain and decision it led to."""
    checks = app.ledger.drift_checks(row.batch_id)
    check = checks[-1] if checks else None
    run = app.ledger.training_run(row.trained_in) if row.trained_in else None
    return {
        "batch_id": row.batch_id,
        "file": row.file_name,
        "sha256": row.sha256,
        "rows": row.rows,
        "status": row.status,
        "reason": row.reason,
        "received_at": row.received_at.isoformat() if row.received_at else None,
        "drift": None if check is None else {"detected": check.detected, "reference_version": check.reference_version, "signals": check.signals, "report": check.report_path},
        "suspect_labels": row.suspect_labels,
        "retrain_run_id": run.mlflow_run_id if run else None,
        "model_version": run.model_version if run else None,
        "decision": run.decision if run else "none",
    }


# ---- reading the registry -----------------------------------------------------------------------
def model_records(app: Sentinel) -> list[dict]:
    """Every registered version: its aliases (read from MLflow), its tags, and what the ledger knows."""
    records = []
    for info in app.registry.versions():
        row = app.ledger.model(app.settings.registered_model, info.version)
        run = app.ledger.training_run(row.training_run_id) if row and row.training_run_id else None
        records.append(
            {
                "version": info.version,
                "aliases": list(info.aliases),
                "tags": {k.removeprefix("sentinel."): v for k, v in info.tags.items() if k.startswith("sentinel.")},
                "metrics": (run.comparison if run else None) or {},
                "batches": list(row.batch_ids) if row else [],
                "new_batches": list(run.batch_ids) if run else [],
                "mlflow_run_id": info.run_id,
                "created_at": dt.datetime.fromtimestamp(info.created_ms / 1000, dt.timezone.utc).isoformat(),
            }
        )
    return records


def resolve_version(app: Sentinel, alias: str = "champion", version: str | None = None) -> ModelRow:
    if version is None:
        version = app.registry.alias_version(alias)
        if version is None:
            raise SentinelError(f"no version has the alias {alias!r}; see `sentinel models`")
    row = app.ledger.model(app.settings.registered_model, str(version))
    if row is None:
        raise SentinelError(f"unknown version {version} of {app.settings.registered_model}; see `sentinel models`")
    return row


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
    scores = model.predict_proba(frame[["text"]])[:, 1]
    labels = (scores >= 0.5).astype(int)
    result = {
        "version": row.version,
        "rows": len(frame),
        "predictions": [{"text": t, "label": int(y), "probability": round(float(p), 4)} for t, y, p in zip(frame["text"], labels, scores)],
    }
    if "label" in frame.columns:
        truth = frame["label"].str.strip().str.lower().map(intake.LABELS)
        known = truth.notna().to_numpy()
        if known.any():
            from sklearn.metrics import accuracy_score, f1_score

            result["accuracy"] = float(accuracy_score(truth[known].astype(int), labels[known]))
            result["f1"] = float(f1_score(truth[known].astype(int), labels[known]))
    return result
