"""What a person must see on a flow run's page without reading a log line: each drift verdict and each
gate decision as a Markdown artifact (formatted by `sentinel.explain` from the ledger's record). Each
kind keeps one key, so Prefect's artifacts page also shows its history across runs."""

from __future__ import annotations

from prefect import get_run_logger
from prefect.artifacts import create_markdown_artifact

from sentinel.context import Sentinel
from sentinel.explain import Links, decision_markdown, drift_markdown
from sentinel.ledger import TrainingRunRow
from sentinel.registry_view import server_url


def _links(app: Sentinel) -> Links:
    return Links(server_url(app.settings), app.settings.registered_model)


def publish_verdicts(app: Sentinel, batch_ids: list[str]) -> None:
    """One artifact per drift check (the members of a pool share theirs)."""
    links, published = _links(app), set()
    for batch_id in batch_ids:
        check = app.ledger.drift_checks(batch_id)[-1]
        if check.id in published or (check.pool and check.mlflow_run_id in published):
            continue
        published |= {check.id, check.mlflow_run_id}
        members = [app.ledger.batch(b) for b in (check.pool["members"] if check.pool else [batch_id])]
        batch = members[0]
        get_run_logger().info("batch %s (%s): drift %s", batch_id, batch.file_name, batch.drift_status)
        create_markdown_artifact(
            markdown=drift_markdown(members, check, links), key="drift-verdict", description=f"drift check of batch {batch_id}"
        )


def publish_decisions(app: Sentinel, runs: list[TrainingRunRow]) -> None:
    """One artifact per retrain: the decision, the gate's slices and the links to MLflow."""
    links = _links(app)
    for run in runs:
        get_run_logger().info("%s -> version %s %s: %s", run.run_name, run.model_version, run.decision, run.reason)
        create_markdown_artifact(
            markdown=decision_markdown(run, links),
            key="retrain-decision",
            description=f"{run.run_name}: version {run.model_version} {run.decision}",
        )
