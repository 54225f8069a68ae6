"""Retraining: the first champion (`bootstrap`), and every retrain after drift. A retrain learns the
champion's data plus every batch not yet learned, is logged to MLflow, judged by the gate against the
champion on the same held-out rows, registered, and handed to promotion. One at a time, and a burst of
batches becomes one retrain."""

from __future__ import annotations

import functools
import hashlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from sentinel import batch_format, drift_reference, events, failpoints, gate, intake, locks, training, tuning
from sentinel.context import Sentinel, os_user
from sentinel.errors import SentinelError
from sentinel.ledger import DRIFTED, BatchDigest, BatchRow, ModelRow, TrainingRunRow, utcnow
from sentinel.pools import ready_batches
from sentinel.promotion import claim_champion, move_alias, retire
from sentinel.references import store_reference
from sentinel.retrain_due import batches_to_learn, refresh_due, retrain_due
from sentinel.settings import GatePolicy

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline


def bootstrap(app: Sentinel, reference_csv: Path, actor: str | None = None, tune: bool | None = None) -> ModelRow:
    """Train the first champion on a labeled CSV and make that data the drift reference. Unless `tune` is
    False (default: the setting `tune.at_bootstrap`), a model search on its training rows comes first."""
    existing = app.champion()
    if existing is not None:
        raise SentinelError(f"a champion exists already (version {existing.version}); bootstrap only starts an empty project")
    if not reference_csv.is_file():
        raise SentinelError(f"reference file not found: {reference_csv}")
    raw = reference_csv.read_bytes()
    try:
        parsed = batch_format.read_export(raw, app.settings.intake)
    except batch_format.RejectedFile as rejected:
        raise SentinelError(
            f"the reference {reference_csv.name} is not usable: {rejected.problem.message}; {rejected.problem.fix}"
        ) from None
    frame = parsed.frame
    sha256 = hashlib.sha256(raw).hexdigest()
    batch_id = "ref-" + intake.new_batch_id()
    stored, _ = intake.store(batch_id, frame, raw, app.settings)
    with app.ledger.transaction() as session:
        session.add(
            BatchRow(
                batch_id=batch_id,
                file_name=reference_csv.name,
                sha256=sha256,
                rows=len(frame),
                status="accepted",
                stored_path=str(stored),
                drift_status="none",
                source=batch_format.batch_source(frame),
                rows_set_aside=len(parsed.set_aside),
            )
        )
        session.flush()
        if session.get(BatchDigest, sha256) is None:
            session.add(BatchDigest(sha256=sha256, batch_id=batch_id))
    if len(parsed.set_aside):
        aside = intake.write_set_aside(parsed.set_aside, reference_csv.name, batch_id, sha256, app.settings)
        with app.ledger.transaction() as session:
            session.get(BatchRow, batch_id).set_aside_path = str(aside)
    data = training.assemble({batch_id: frame}, {}, app.settings.gate.holdout_share, app.settings.gate.reference_holdout_rows)
    if app.settings.tune.at_bootstrap if tune is None else tune:
        app.steps("tune", "search the model families", tuning.tune, app, data.train, "bootstrap")
    return _train_and_register(app, data, run_name=f"bootstrap-{batch_id}", champion=None, actor=actor or os_user())


def backlog(app: Sentinel) -> int:
    """Files in the drop zone plus batches ready for their drift check (not those waiting for a pool)."""
    return len(intake.pending_files(app.settings)) + len(ready_batches(app))


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


def settle_and_retrain(app: Sentinel, actor: str = "sentinel") -> TrainingRunRow:
    """One turn of `loop.retrain_until_done`, under its lock: let a burst of files settle, so
    that it becomes one retrain that learns them all, then retrain."""
    policy = app.settings.up
    app.steps("settle", "let the burst settle", wait_for_quiet, app, policy.retrain_quiet_seconds, policy.retrain_max_wait_seconds)
    return _retrain(app, actor)


Overrule = Callable[[gate.Decision], gate.Decision]


def retrain(
    app: Sentinel, actor: str = "sentinel", *, only_when_due: bool = True, overrule: Overrule | None = None
) -> TrainingRunRow | None:
    """Train a challenger on the champion's data plus every batch not yet learned, gate it, register it.
    One at a time: a second caller returns None at once, and the running one takes all pending work.

    The two keywords exist for the baselines `sentinel replay` compares the policy with: `only_when_due`
    False retrains whenever a batch is waiting to be learned, drift or not, and `overrule` replaces the
    gate's decision (the rest of the path, registry and references included, stays the real one)."""
    with locks.held(app.settings, "retrain", timeout=0) as acquired:
        if not acquired:
            return None
        if retrain_due(app) or (not only_when_due and batches_to_learn(app, app.require_champion())):
            return _retrain(app, actor, overrule)
        return None


def _retrain(app: Sentinel, actor: str, overrule: Overrule | None = None) -> TrainingRunRow:
    champion = app.require_champion()
    data = app.steps("assemble", "assemble the training rows", training_data, app, champion)
    run_name = "retrain-" + _name_batches(data.new_batches)
    if _retune_due(app, data):
        app.steps("tune", "search the model families again: the text moved far", tuning.tune, app, data.train, "drift")
    model = _train_and_register(app, data, run_name=run_name, champion=champion, actor=actor, overrule=overrule)
    run = app.ledger.training_run(model.training_run_id)
    _announce(app, run, model)
    return run


def _retune_due(app: Sentinel, data: training.TrainingData) -> bool:
    """A retrain searches again when the text of the batches that caused it drifted at least as far as
    `tune.retune_text_drift` (a new domain may suit another family)."""
    threshold = app.settings.tune.retune_text_drift
    return data.cause == "drift" and threshold > 0 and _drift_scores(app, data.shifted_batches).get("text", 0.0) >= threshold


def _announce(app: Sentinel, run: TrainingRunRow, model: ModelRow) -> None:
    resource = events.model_resource(model.model_name, model.version)
    payload = {
        "run_name": run.run_name,
        "decision": run.decision,
        "reason": run.reason,
        "batches": list(run.batch_ids),
        "mlflow_run_id": run.mlflow_run_id,
    }
    events.emit(app.settings, events.RETRAIN_COMPLETED, resource, payload)
    decision_event = {"promoted": events.MODEL_PROMOTED, "challenger": events.MODEL_CHALLENGER, "rejected": events.MODEL_REJECTED}[
        run.decision
    ]
    events.emit(app.settings, decision_event, resource, payload)


def training_data(app: Sentinel, champion: ModelRow) -> training.TrainingData:
    """The champion's batches plus every batch it has not learned, split into training and held-out rows.
    The gate judges superiority where the world moved: on the batches whose drift caused this retrain,
    and on every other new batch that drifted (an earlier retrain answered it with a challenger that was
    not promoted; the champion has still not learned it). Judged on the newest drift alone, each new
    challenger started its evidence from one batch: 100-row batches of a harmful shift superseded
    challenger after challenger, and none was ever promoted."""

    def frames(rows: list[BatchRow | None]) -> dict[str, pd.DataFrame]:
        return {r.batch_id: intake.load_batch_frame(r.stored_path) for r in rows if r is not None}

    old = frames([app.ledger.batch(b) for b in champion.batch_ids])
    new = batches_to_learn(app, champion)
    fresh = frames(new)
    drift_caused = bool(app.ledger.unanswered_drift())  # unanswered drift is itself among the new drifted batches
    cause = "drift" if drift_caused else "refresh" if refresh_due(app, champion) else "baseline"
    shifted = tuple(b.batch_id for b in new if b.drift_status in DRIFTED) if drift_caused else ()
    harmed = any(_signal_fired(app, b, "performance") for b in shifted)
    gate_policy = app.settings.gate
    return training.assemble(
        old,
        fresh,
        gate_policy.holdout_share,
        gate_policy.reference_holdout_rows,
        shifted=shifted,
        max_old_rows=app.settings.training.max_old_rows,
        cause=cause,
        harmed=harmed,
    )


def _signal_fired(app: Sentinel, batch_id: str, signal: str) -> bool:
    """Whether the named signal drifted at the batch's latest drift check."""
    checks = app.ledger.drift_checks(batch_id)
    return bool(checks) and any(s["name"] == signal and s.get("drifted") for s in checks[-1].signals)


def _name_batches(batch_ids: tuple[str, ...]) -> str:
    if len(batch_ids) <= 3:
        return "+".join(batch_ids)
    return f"{batch_ids[0]}..{batch_ids[-1]}({len(batch_ids)})"


def _train_and_register(
    app: Sentinel, data: training.TrainingData, *, run_name: str, champion: ModelRow | None, actor: str, overrule: Overrule | None = None
) -> ModelRow:
    # The drift reference a promotion needs depends on the training rows only: build it in the
    # worker while the model fits here. Whatever happens, its answer is read, so the worker is free.
    reference_job = drift_reference.ReferenceJob(data.train, app.settings.drift, seed=app.settings.model.seed, memo=app.memo)
    try:
        return _fit_gate_register(app, data, reference_job, run_name=run_name, champion=champion, actor=actor, overrule=overrule)
    finally:
        reference_job.discard()


def _fit_gate_register(
    app: Sentinel,
    data: training.TrainingData,
    reference_job: drift_reference.ReferenceJob,
    *,
    run_name: str,
    champion: ModelRow | None,
    actor: str,
    overrule: Overrule | None,
) -> ModelRow:
    import mlflow

    from sentinel import reporting

    settings = app.settings
    params = tuning.current_params(app)
    search = app.ledger.latest_tuning()
    started = utcnow()
    experiment = app.registry.experiment_id(settings.training_experiment)
    with mlflow.start_run(experiment_id=experiment, run_name=run_name) as run:
        mlflow.set_tags(
            {
                "sentinel.batches": ",".join(data.new_batches) or "reference",
                "sentinel.trigger": data.cause,
            }
            | ({"sentinel.tuning_run": search.mlflow_run_id} if search else {})
        )
        mlflow.log_params(
            params.model_dump()
            | {
                "train_rows": len(data.train),
                "holdout_new_rows": len(data.holdout_new),
                "holdout_reference_rows": len(data.holdout_reference),
            }
        )
        reporting.log_inputs(data)
        tick = time.perf_counter()
        weights = np.where(data.new_rows_mask(), settings.training.new_rows_weight, 1.0) if settings.training.new_rows_weight != 1 else None
        model = app.steps("fit", f"fit {run_name}", app.memo.kept("fit", training.fit), data.train[["text", "label"]], params, weights)
        mlflow.log_metric("fit_seconds", time.perf_counter() - tick)

        challenger_new = training.evaluate(model, data.holdout_new)
        challenger_ref = training.evaluate(model, data.holdout_reference)
        mlflow.log_metrics(challenger_new.metrics("new") | challenger_ref.metrics("reference"))

        @functools.cache  # fitted once, at the first judgement that needs it
        def cross_fitted() -> training.CrossFit:
            folds = settings.gate.cross_fit_folds
            cross = app.steps("cross-fit", f"cross-fit the shifted rows in {folds} folds", _cross_fit, app, data, model, weights)
            if mlflow.active_run():  # a re-judgement at promotion comes after the run has ended
                mlflow.log_param("cross_fitted_rows", len(cross.y_pred))
            return cross

        def judge(champion_version: str) -> gate.Decision:
            """The gate: this run's model against a champion, on the same held-out rows. When those leave
            it undecided, the shifted batches' training rows, cross-fitted, are judged too."""
            champion_model = app.load_model(app.ledger.model(settings.registered_model, champion_version))
            champion_new = training.evaluate(champion_model, data.holdout_new)
            champion_ref = training.evaluate(champion_model, data.holdout_reference)
            if mlflow.active_run():
                mlflow.log_metrics(champion_new.metrics("champion_new") | champion_ref.metrics("champion_reference"))
            fresher = {"refresh": data.cause == "refresh", "harmed": data.harmed}
            slices = gate_slices(data, champion_new, challenger_new, champion_ref, challenger_ref)
            decision = gate.decide(slices, settings.gate, champion_version, **fresher)
            # Cross-fit when the held-out rows leave the challenger undecided, and before a promotion
            # while some shifted batch has too few of them for its label check (20 of a 100-row batch):
            # a small batch of random labels learned beside a clear gain would otherwise ride on it.
            needs_rows = decision.decision == "challenger" or (decision.decision == "promoted" and slices.unchecked(settings.gate))
            if needs_rows and _cross_fit_due(data, settings.gate):
                out_of_fold = cross_fitted()
                crossed = (out_of_fold, training.evaluate(champion_model, out_of_fold.rows))
                slices = gate_slices(data, champion_new, challenger_new, champion_ref, challenger_ref, crossed)
                decision = gate.decide(slices, settings.gate, champion_version, **fresher)
            return decision

        if champion is None:
            decision = None
        else:
            decision = app.steps("judge", f"judge against champion v{champion.version}", judge, champion.version)
            if overrule is not None:
                decision = overrule(decision)
            mlflow.log_metrics({k: v for k, v in decision.as_dict().items() if isinstance(v, float) and v == v and abs(v) != float("inf")})
            mlflow.set_tags({"sentinel.decision": decision.decision, "sentinel.rule": decision.rule})
        reporting.log_curves(challenger_new if challenger_new.rows else challenger_ref)

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
            "metric": settings.gate.metric,
            "metric_reference": float(gate.metric(settings.gate.metric, challenger_ref.y_true, challenger_ref.y_pred)),
        }
        if decision is not None:
            tags |= decision.tags()
        new = [app.ledger.batch(b) for b in data.new_batches]
        about = [(b.file_name, b.source, b.rows) for b in new if b is not None]
        description = reporting.version_description(data, about, outcome, reason, decision, params, search)

        def log_and_register() -> tuple[str, str, dict[str, str]]:
            """The model in this run's artifacts, then a new version of the registered model."""
            model_uri, digest, files = app.registry.log_model(model, data.train[["text"]].head(5))
            return app.registry.register(model_uri, tags | {"model_sha256": digest}, description), digest, files

        version, digest, files = app.steps("register", f"register {run_name} ({outcome})", log_and_register)
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
            comparison=decision.as_dict() | {"champion_version": champion.version, "cause": data.cause}
            if decision
            else {
                "metric": settings.gate.metric,
                "metric_reference": tags["metric_reference"],
                "accuracy_reference": challenger_ref.accuracy,
            },
        )
        session.add(run_row)
        session.flush()
        bad = set(decision.bad_batches) if decision else set()
        for batch_id in data.new_batches:
            batch = session.get(BatchRow, batch_id)
            batch.trained_in = run_row.id
            if batch_id in bad:
                batch.excluded = f"labels cannot be learned (version {version}): {reason}"
        session.add(
            ModelRow(
                model_name=settings.registered_model,
                version=version,
                mlflow_run_id=run.info.run_id,
                training_run_id=run_row.id,
                batch_ids=list(data.learned_batches),
                artifact_sha256=digest,
                manifest=files,
                decision=outcome,
                evidence=decision.evidence.as_dict() if decision and decision.evidence and outcome == "challenger" else None,
            )
        )

    failpoints.reach("retrain.recorded")
    if outcome in ("promoted", "challenger"):
        _retire_superseded(app, version, actor)

    def keep_reference() -> None:
        expected = expected_accuracy(data, challenger_new, challenger_ref)
        app.steps(
            "store-reference",
            f"store the drift reference of v{version}",
            lambda: store_reference(app, version, *reference_job.result(*expected)),
        )

    if outcome == "promoted":
        keep_reference()
        app.steps(
            "promote",
            f"promote v{version} to champion",
            claim_champion,
            app,
            version,
            champion.version if champion else None,
            judge,
            actor,
            reason,
            run_row.id,
        )
    elif outcome == "challenger":
        app.steps("hold-challenger", f"hold v{version} as challenger", _hold_as_challenger, app, version, actor, reason)
        # Built in the worker while the model fitted, so keeping it costs a file: promoting the challenger
        # later, by its shadow evidence or by hand, then moves aliases instead of calibrating a reference
        # (a hand `promote` took 5.9 s on the demo's reference when it built one, 1.9 s once it was kept).
        keep_reference()
    return app.ledger.model(settings.registered_model, version)


def _cross_fit_due(data: training.TrainingData, policy: GatePolicy) -> bool:
    shifted_rows = int(data.shifted_rows_mask().sum())
    return policy.cross_fit_folds >= 2 and 0 < shifted_rows <= policy.cross_fit_max_rows


def _cross_fit(app: Sentinel, data: training.TrainingData, model: Pipeline, weights: np.ndarray | None) -> training.CrossFit:
    """Out-of-fold predictions on the shifted batches' training rows, by models fitted as the challenger
    was (same rows but the fold's, same parameters and weights)."""
    return training.out_of_fold(
        model, data.train, data.shifted_rows_mask(), app.settings.gate.cross_fit_folds, weights, seed=app.settings.model.seed
    )


def gate_slices(
    data: training.TrainingData,
    champion_new: training.Evaluation,
    challenger_new: training.Evaluation,
    champion_ref: training.Evaluation,
    challenger_ref: training.Evaluation,
    crossed: tuple[training.CrossFit, training.Evaluation] | None = None,
) -> gate.Slices:
    """Both models' predictions on the held-out rows, cut into the slices the gate judges; with
    `crossed` (the out-of-fold predictions and the champion's on the same rows), the shifted batches'
    training rows join their held-out rows in the shifted slice and in each batch's label check."""
    new = gate.SliceScores(champion_new.y_true, champion_new.y_pred, challenger_new.y_pred)
    batch_of = data.holdout_new["batch_id"].to_numpy()
    shifted = np.isin(batch_of, data.shifted_batches)
    per_batch = {b: new.take(batch_of == b) for b in data.new_batches}
    extra = gate.SliceScores.empty()
    if crossed is not None:
        cross, champion_cross = crossed
        extra = gate.SliceScores(champion_cross.y_true, champion_cross.y_pred, cross.y_pred)
        cross_batch_of = cross.rows["batch_id"].to_numpy()
        per_batch = {b: scores + extra.take(cross_batch_of == b) for b, scores in per_batch.items()}
    return gate.Slices(
        shifted=new.take(shifted) + extra,
        other_new=new.take(~shifted),
        reference=gate.SliceScores(champion_ref.y_true, champion_ref.y_pred, challenger_ref.y_pred),
        per_batch=per_batch,
        shifted_batches=data.shifted_batches,
        cross_fitted=extra.rows,
    )


def expected_accuracy(data: training.TrainingData, new: training.Evaluation, reference: training.Evaluation) -> tuple[float, int]:
    """What a new champion is expected to score on unseen rows of the world as it is now, and on how
    many rows that was measured: its accuracy on the held-out rows of the batches that caused its
    retrain (the new world), else on every held-out row. The performance signal holds batches to it;
    an average over the old and the new domain would call every batch of the new one a loss."""
    shifted = data.holdout_new["batch_id"].isin(data.shifted_batches).to_numpy()
    if new.rows and shifted.sum() >= 50:
        return float(np.mean(new.y_pred[shifted] == new.y_true[shifted])), int(shifted.sum())
    held = [e for e in (new, reference) if e.rows]
    rows = sum(e.rows for e in held)
    return sum(e.accuracy * e.rows for e in held) / rows, rows


def _hold_as_challenger(app: Sentinel, version: str, actor: str, reason: str) -> None:
    with locks.promotion_lock(app.settings):
        move_alias(app, "challenger", version, actor, reason)


def _retire_superseded(app: Sentinel, version: str, actor: str) -> None:
    """A newer challenger (or a new champion) supersedes every challenger still gathering evidence."""
    live = [m for m in app.ledger.models(app.settings.registered_model) if m.decision == "challenger" and m.version != version]
    if live:
        with locks.promotion_lock(app.settings):
            for row in live:
                retire(app, row.version, f"superseded by version {version}", actor)


def _drift_scores(app: Sentinel, batch_ids: tuple[str, ...]) -> dict[str, float]:
    """The largest text and label drift scores among the batches that caused this run."""
    scores: dict[str, float] = {}
    for batch_id in batch_ids:
        for check in app.ledger.drift_checks(batch_id):
            for signal in check.signals:
                if signal["name"] in ("text", "label"):
                    scores[signal["name"]] = max(scores.get(signal["name"], float("-inf")), signal["score"])
    return scores
