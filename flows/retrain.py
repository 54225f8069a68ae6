"""retrain: triggered by `sentinel.drift.detected`. One at a time (a lock, see
`sentinel.retraining.retrain_until_done`), and it lets a burst of files settle first, so the burst
becomes one retrain."""

from __future__ import annotations

from prefect import flow, get_run_logger

from flows._project import project


@flow(name="retrain", retries=1, retry_delay_seconds=30)
def retrain(batch_id: str | None = None) -> list[dict]:
    """`batch_id` names the batch whose drift started the run; every unlearned batch is learned."""
    from sentinel import locks
    from sentinel.retrain_due import retrain_due

    with project() as app:
        # A burst's later detections start runs that find the work taken or done. They leave before
        # importing what a retrain needs (scikit-learn, MLflow: about 80 MB more in each such process,
        # which ran beside the real retrain at the peak memory of `sentinel up`).
        with locks.held(app.settings, "retrain", timeout=0) as free:
            due = free and retrain_due(app)
        runs = _retrain_until_done(app) if due else []
    if not runs:
        get_run_logger().info("nothing to retrain: no unanswered drift, or another retrain holds the work")
    return [{"run": r.run_name, "version": r.model_version, "decision": r.decision, "reason": r.reason} for r in runs]


def _retrain_until_done(app) -> list:
    from flows._artifacts import publish_decisions
    from sentinel.retraining import retrain_until_done

    runs = retrain_until_done(app)
    publish_decisions(app, runs)
    return runs
