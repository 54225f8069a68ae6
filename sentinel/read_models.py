"""Read models: the records the CLI prints (and `--json` emits) for batches, model versions, the
alias history and one version's lineage. They read the ledger, and the registry only where the
record shows what MLflow holds (aliases, tags, run links)."""

from __future__ import annotations

import datetime as dt

from sentinel.context import Sentinel, resolve_version
from sentinel.ledger import BatchRow
from sentinel.pools import waiting_for_pool


def batch_records(app: Sentinel, rows: list[BatchRow]) -> list[dict]:
    """Several batches as the CLI shows them (see `batch_record`): three queries in all, not three a
    batch, so `batches` stays quick on a long history."""
    waiting = waiting_for_pool(app)
    last_check = {check.batch_id: check for check in app.ledger.drift_checks()}  # in order: the last one stays
    runs = {run.id: run for run in app.ledger.training_runs()}
    return [batch_record(app, row, waiting, last_check.get(row.batch_id), runs.get(row.trained_in)) for row in rows]


def batch_record(app: Sentinel, row: BatchRow, waiting: set[str] | None = None, check=..., run=...) -> dict:
    """One batch as the CLI shows it: intake (rows set aside included), drift verdict (or the pool it
    waits for), and the retrain and decision it led to. `waiting`: the ids waiting for a pool, if known;
    `check` and `run`: its last drift check and its retrain, if already read."""
    waiting = waiting_for_pool(app) if waiting is None else waiting
    if check is ...:
        checks = app.ledger.drift_checks(row.batch_id)
        check = checks[-1] if checks else None
    if run is ...:
        run = app.ledger.training_run(row.trained_in) if row.trained_in else None
    return {
        "batch_id": row.batch_id,
        "file": row.file_name,
        "sha256": row.sha256,
        "rows": row.rows,
        "status": row.status,
        "reason": row.reason,
        "received_at": row.received_at.isoformat() if row.received_at else None,
        "source": row.source,
        "rows_set_aside": row.rows_set_aside or 0,
        "set_aside": row.set_aside_path,
        "waiting_for_pool": row.batch_id in waiting,
        "drift": None
        if check is None
        else {
            "detected": check.detected,
            "reference_version": check.reference_version,
            "signals": check.signals,
            "report": check.report_path,
            "pool": check.pool,
            "trigger": check.trigger,
            "shadow": check.shadow,
        },
        "drift_status": row.drift_status,
        "retrain_due": row.drift_status == "detected",
        "suspect_labels": row.suspect_labels,
        "excluded": row.excluded,
        "check_failures": {
            "attempts": row.check_attempts,
            "error": row.check_error,
            "retry_at": row.retry_at.isoformat() if row.retry_at else None,
        }
        if row.check_attempts
        else None,
        "retrain_run_id": run.mlflow_run_id if run else None,
        "model_version": run.model_version if run else None,
        "decision": run.decision if run else "none",
        "retrain_cause": ((run.comparison or {}).get("cause") or "drift") if run else None,
        "gate": _gate_summary(run.comparison) if run and run.comparison else None,
    }


def _gate_summary(comparison: dict) -> dict:
    """The decision's numbers under the metric's own name, as `batches --json` shows them."""
    keys = ("metric", "metric_new", "metric_champion", "delta", "ci_low", "ci_high", "e_value", "p_value", "rule", "deciding_slice")
    return {k: comparison.get(k) for k in keys if k in comparison}


def model_records(app: Sentinel) -> list[dict]:
    """Every registered version: its aliases (read from MLflow), its tags, and what the ledger knows."""
    records = []
    for info in app.registry_view.versions():
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


def history(app: Sentinel) -> list[dict]:
    """Every alias move, newest first."""
    return [
        {
            "alias": m.alias,
            "kind": m.kind,
            "from": m.from_version,
            "to": m.to_version,
            "by": m.actor,
            "reason": m.reason,
            "at": m.moved_at.isoformat(),
        }
        for m in app.ledger.alias_moves(app.settings.registered_model)
    ]


def _run_link(app: Sentinel, run_id: str | None) -> str | None:
    """A link to the run in the MLflow UI when the tracking URI is a server, else the run id."""
    if not run_id:
        return None
    uri = app.settings.mlflow_tracking_uri
    if not uri.startswith(("http://", "https://")):
        return run_id
    experiment = app.registry_view.run_experiment(run_id)
    return f"{uri.rstrip('/')}/#/experiments/{experiment}/runs/{run_id}"


def lineage(app: Sentinel, version: str) -> dict:
    """Batch files → drift checks → retrain run → gate comparison → alias moves, for one version."""
    row = resolve_version(app, version=version)
    info = next(v for v in app.registry_view.versions() if v.version == row.version)
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
                "rows_set_aside": batch.rows_set_aside or 0,
                "source": batch.source,
                "received_at": batch.received_at.isoformat(),
                "drift_checks": [
                    {
                        "detected": c.detected,
                        "against_version": c.reference_version,
                        "fired": [s["name"] for s in c.signals if s["drifted"]],
                        "trigger": c.trigger,
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


def filter_records(records: list[dict], role: str | None = None, decision: str | None = None) -> list[dict]:
    """The model records with a role or alias, and a gate decision, when given."""

    def keep(record: dict) -> bool:
        tags = record["tags"]
        roles = {tags.get("role"), *record["aliases"]}
        return (role is None or role in roles) and (decision is None or tags.get("decision") == decision)

    return [r for r in records if keep(r)]
