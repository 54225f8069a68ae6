"""retrain: triggered by `sentinel.drift.detected`. One at a time (a lock, see
`sentinel.loop.retrain_until_done`), and it lets a burst of files settle first, so the burst
becomes one retrain."""

from __future__ import annotations

from prefect import flow, get_run_logger

from flows._project import project


@flow(name="retrain", retries=1, retry_delay_seconds=30)
def retrain(batch_id: str | None = None) -> list[dict]:
    """`batch_id` names the batch whose drift started the run; every unlearned batch is learned."""
    from sentinel.loop import retrain_until_done

    with project() as app:
        runs = retrain_until_done(app)
        if runs:
            from flows._artifacts import publish_decisions

            publish_decisions(app, runs)
    if not runs:
        get_run_logger().info("nothing to retrain: no unanswered drift, or another retrain holds the work")
    return [{"run": r.run_name, "version": r.model_version, "decision": r.decision, "reason": r.reason} for r in runs]
