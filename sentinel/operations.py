"""What an operator does with Sentinel: read the lineage of a version and the history of the aliases,
and overrule the gate (promote, reject, roll back, review, requeue a fixed file).

Every alias move goes through `services.move_alias` under the promotion lock, so MLflow's alias, the
version's `sentinel.*` tags and the ledger's alias history change together, and the champion is re-read
inside the lock (MLflow has no compare-and-set).
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

from sentinel import events, intake, locks
from sentinel.errors import SentinelError
from sentinel.ledger import ModelRow, TrainingRunRow
from sentinel.services import Sentinel, ensure_reference, move_alias, resolve_version


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


ROLLBACK = "rollback: "


def _previous_champion(app: Sentinel) -> str | None:
    """The champion before the current one, from the ledger's alias history. Champions form a stack:
    a move pushes, a rollback pops, so rolling back twice goes two champions back."""
    reigns: list[str] = []
    for move in reversed(app.ledger.alias_moves(app.settings.registered_model)):
        if move.alias != "champion" or move.to_version is None:
            continue
        if move.reason.startswith(ROLLBACK) and reigns:
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
    events.emit(app.settings, events.MODEL_PROMOTED, events.model_resource(row.model_name, row.version), {"by": actor, "reason": reason, "previous": previous})
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
        with app.ledger.transaction() as session:
            session.get(ModelRow, (row.model_name, row.version)).decision = "rejected"
            if row.training_run_id is not None:
                session.get(TrainingRunRow, row.training_run_id).decision = "rejected"
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
        move_alias(app, "champion", previous, actor, ROLLBACK + reason)
        app.registry.set_tags(current, {"role": "rolled-back", "override": f"rolled back by {actor}: {reason}", "override_at": _now()})
    events.emit(app.settings, events.MODEL_ROLLED_BACK, events.model_resource(app.settings.registered_model, previous), {"by": actor, "reason": reason, "from": current})
    return {"version": previous, "rolled_back": current, "by": actor, "reason": reason}


def review(app: Sentinel, version: str, approved: bool, note: str, actor: str) -> dict:
    """A person's sign-off on a version, as tags on the version (the registry page shows it)."""
    row = resolve_version(app, version=version)
    verdict = "approved" if approved else "rejected"
    app.registry.set_tags(row.version, {"review": verdict, "review_note": note, "reviewed_by": actor, "reviewed_at": _now()})
    return {"version": row.version, "review": verdict, "review_note": note, "reviewed_by": actor}


def history(app: Sentinel) -> list[dict]:
    """Every alias move, newest first."""
    return [
        {"alias": m.alias, "from": m.from_version, "to": m.to_version, "by": m.actor, "reason": m.reason, "at": m.moved_at.isoformat()}
        for m in app.ledger.alias_moves(app.settings.registered_model)
    ]


def _run_link(app: Sentinel, run_id: str | None) -> str | None:
    """A link to the run in the MLflow UI when the tracking URI is a server, else the run id."""
    if not run_id:
        return None
    uri = app.settings.mlflow_tracking_uri
    if not uri.startswith(("http://", "https://")):
        return run_id
    experiment = app.registry.client.get_run(run_id).info.experiment_id
    return f"{uri.rstrip('/')}/#/experiments/{experiment}/runs/{run_id}"


def lineage(app: Sentinel, version: str) -> dict:
    """Batch files → drift checks → retrain run → gate comparison → alias moves, for one version."""
    row = resolve_version(app, version=version)
    info = next(v for v in app.registry.versions() if v.version == row.version)
    run = app.ledger.training_run(row.training_run_id) if row.training_run_id else None
    new_batches = list(run.batch_ids) if run else []
    batches = []
    for batch_id in new_batches:
        batch = app.ledger.batch(batch_id)
        checks = app.ledger.drift_checks(batch_id)
        batches.append(
            {
                "batch_id": batch_id,
                "file": batch.file_name,
                "rows": batch.rows,
                "received_at": batch.received_at.isoformat(),
                "drift_checks": [
                    {
                        "detected": c.detected,
                        "against_version": c.reference_version,
                        "fired": [s["name"] for s in c.signals if s["drifted"]],
                        "signals": c.signals,
                        "report": c.report_path,
                        "mlflow_run": _run_link(app, c.mlflow_run_id),
                    }
                    for c in checks
                ],
            }
        )
    moves = [m for m in history(app) if row.version in (m["from"], m["to"])]
    return {
        "version": row.version,
        "model": row.model_name,
        "aliases": list(info.aliases),
        "tags": {k.removeprefix("sentinel."): v for k, v in info.tags.items() if k.startswith("sentinel.")},
        "learned_batches": list(row.batch_ids),
        "new_batches": batches,
        "retrain": None
        if run is None
        else {
            "run_name": run.run_name,
            "mlflow_run": _run_link(app, run.mlflow_run_id),
            "trained_rows": run.trained_rows,
            "started_at": run.started_at.isoformat(),
            "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        },
        "gate": None if run is None else {"decision": run.decision, "reason": run.reason, "comparison": run.comparison},
        "alias_moves": moves,
    }


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
    os.replace(source, target)
    reason_file.rename(reason_file.with_name(f"{reason_file.name}.requeued-{dt.datetime.now(dt.timezone.utc):%Y%m%d-%H%M%S}"))
    return target


def filter_records(records: list[dict], role: str | None = None, decision: str | None = None) -> list[dict]:
    def keep(record: dict) -> bool:
        tags = record["tags"]
        roles = {tags.get("role"), *record["aliases"]}
        return (role is None or role in roles) and (decision is None or tags.get("decision") == decision)

    return [r for r in records if keep(r)]

