"""Promotion: every way the champion and challenger aliases move, in one place.

MLflow's alias write is last-writer-wins with no compare-and-set, so Sentinel serializes it: under the
promotion lock the champion is re-read, and a model that beat an older champion is judged again
against a newer one (`claim_champion`). Every move changes MLflow's alias, the version's `sentinel.*`
tags and the ledger's alias history together (`move_alias`). Here too: the promotions a crash left
half done, and a person's overrides (promote, reject, roll back, review).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from sentinel import events, failpoints, gate, locks
from sentinel.context import Sentinel, resolve_version
from sentinel.errors import SentinelError
from sentinel.ledger import MOVE, ROLLBACK, AliasMoveRow, BatchRow, ModelRow, TrainingRunRow, utcnow
from sentinel.references import ensure_reference


def stranded_promotions(app: Sentinel) -> list[ModelRow]:
    """Versions the gate promoted that never held the champion alias: a retrain stopped between its
    ledger commit and the alias move (a kill, a restart of `sentinel up`)."""
    crowned = {m.to_version for m in app.ledger.alias_moves(app.settings.registered_model) if m.alias == "champion"}
    crowned.add(app.registry_view.alias_version("champion"))
    return [m for m in app.ledger.models(app.settings.registered_model) if m.decision == "promoted" and m.version not in crowned]


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
                return gate.Decision.unmeasured(
                    "challenger", f"version {current} became champion before version {version}'s promotion was completed; compare again"
                )

            ensure_reference(app, model)  # the run may have stopped before writing it
            outcome = claim_champion(
                app,
                model.version,
                compared_with,
                stale,
                actor,
                run.reason if run else "promotion completed after a restart",
                model.training_run_id,
            )
            done.append(f"version {model.version}: {outcome}")
        return done


def claim_champion(
    app: Sentinel,
    version: str,
    compared_with: str | None,
    judge: Callable[[str], gate.Decision],
    actor: str,
    reason: str,
    run_id: int | None = None,
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
            app.registry.set_tags(
                version,
                {"role": "champion" if outcome == "promoted" else outcome, "decision": outcome, "reason": reason} | decision.tags(),
            )
            with app.ledger.transaction() as session:
                stored = session.get(ModelRow, (app.settings.registered_model, version))
                stored.decision = outcome
                stored.evidence = decision.evidence.as_dict() if decision.evidence and outcome == "challenger" else None
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


def retire(app: Sentinel, version: str, reason: str, actor: str) -> None:
    """A challenger leaves the race (its evidence went the other way, it waited too long, or a newer one
    superseded it): it loses the challenger alias and its evidence stops. Call inside `promotion_lock`."""
    if app.registry.alias_version("challenger") == version:
        move_alias(app, "challenger", None, actor, f"retired: {reason}")
    app.registry.set_tags(version, {"role": "retired", "decision": "retired", "reason": reason})
    with app.ledger.transaction() as session:
        row = session.get(ModelRow, (app.settings.registered_model, version))
        row.decision = "retired"
        if row.training_run_id is not None:
            run = session.get(TrainingRunRow, row.training_run_id)
            run.decision, run.reason = "retired", reason


def move_alias(app: Sentinel, alias: str, version: str | None, actor: str, reason: str, kind: str = MOVE) -> None:
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
        session.add(
            AliasMoveRow(
                model_name=app.settings.registered_model,
                alias=alias,
                from_version=previous,
                to_version=version,
                actor=actor,
                reason=reason,
                moved_at=utcnow(),
                kind=kind,
            )
        )


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def _previous_champion(app: Sentinel) -> str | None:
    """The champion before the current one, from the ledger's alias history. Champions form a stack:
    a move pushes, a rollback pops, so rolling back twice goes two champions back."""
    reigns: list[str] = []
    for move in reversed(app.ledger.alias_moves(app.settings.registered_model)):
        if move.alias != "champion" or move.to_version is None:
            continue
        if move.kind == ROLLBACK and reigns:
            reigns.pop()
        else:
            reigns.append(move.to_version)
    return reigns[-2] if len(reigns) >= 2 else None


def promote(app: Sentinel, version: str, reason: str, actor: str) -> dict:
    """Make a version champion by hand; the one it replaces can be brought back with `rollback`."""
    row = resolve_version(app, version=version)
    if app.registry.alias_version("champion") == row.version:
        raise SentinelError(f"version {row.version} is the champion already")
    ensure_reference(app, row)
    with locks.promotion_lock(app.settings):
        previous = app.registry.alias_version("champion")
        if previous == row.version:
            raise SentinelError(f"version {row.version} is the champion already")
        move_alias(app, "champion", row.version, actor, reason)
        if app.registry.alias_version("challenger") == row.version:
            move_alias(app, "challenger", None, actor, f"promoted to champion: {reason}")
        app.registry.set_tags(row.version, {"role": "champion", "override": f"promoted by {actor}: {reason}", "override_at": _now()})
    events.emit(
        app.settings,
        events.MODEL_PROMOTED,
        events.model_resource(row.model_name, row.version),
        {"by": actor, "reason": reason, "previous": previous},
    )
    return {"version": row.version, "previous_champion": previous, "by": actor, "reason": reason}


def reject(app: Sentinel, version: str, reason: str, actor: str) -> dict:
    """Mark a version rejected: it loses the challenger alias, and the batches only it learned are not
    offered to the next retrain (as when the gate rejects)."""
    row = resolve_version(app, version=version)
    with locks.promotion_lock(app.settings):
        if app.registry.alias_version("champion") == row.version:
            raise SentinelError(f"version {row.version} is the champion: `sentinel rollback` or `sentinel promote` another version first")
        if app.registry.alias_version("challenger") == row.version:
            move_alias(app, "challenger", None, actor, f"rejected: {reason}")
        app.registry.set_tags(row.version, {"role": "rejected", "override": f"rejected by {actor}: {reason}", "override_at": _now()})
        champion = app.champion()
        learned_by_champion = set(champion.batch_ids) if champion else set()
        with app.ledger.transaction() as session:
            session.get(ModelRow, (row.model_name, row.version)).decision = "rejected"
            if row.training_run_id is not None:
                run = session.get(TrainingRunRow, row.training_run_id)
                run.decision = "rejected"
                for batch_id in set(run.batch_ids) - learned_by_champion:
                    session.get(BatchRow, batch_id).excluded = f"learned by version {row.version}, which {actor} rejected: {reason}"
    events.emit(app.settings, events.MODEL_REJECTED, events.model_resource(row.model_name, row.version), {"by": actor, "reason": reason})
    return {"version": row.version, "by": actor, "reason": reason}


def rollback(app: Sentinel, reason: str, actor: str) -> dict:
    """Give the champion alias back to the version that held it before the current champion."""
    with locks.promotion_lock(app.settings):
        current = app.registry.alias_version("champion")
        if current is None:
            raise SentinelError("there is no champion to roll back")
        previous = _previous_champion(app)
        if previous is None:
            raise SentinelError(f"version {current} is the first champion: there is no previous champion to roll back to")
        move_alias(app, "champion", previous, actor, f"rollback: {reason}", kind=ROLLBACK)
        app.registry.set_tags(current, {"role": "rolled-back", "override": f"rolled back by {actor}: {reason}", "override_at": _now()})
    events.emit(
        app.settings,
        events.MODEL_ROLLED_BACK,
        events.model_resource(app.settings.registered_model, previous),
        {"by": actor, "reason": reason, "from": current},
    )
    return {"version": previous, "rolled_back": current, "by": actor, "reason": reason}


def review(app: Sentinel, version: str, approved: bool, note: str, actor: str) -> dict:
    """A person's sign-off on a version, as tags on the version (the registry page shows it)."""
    row = resolve_version(app, version=version)
    verdict = "approved" if approved else "rejected"
    app.registry.set_tags(row.version, {"review": verdict, "review_note": note, "reviewed_by": actor, "reviewed_at": _now()})
    return {"version": row.version, "review": verdict, "review_note": note, "reviewed_by": actor}
