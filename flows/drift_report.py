"""drift-report: on a cron schedule, one Evidently report of the batches since the last report against
the champion's reference: HTML under reports/, the same in MLflow, a snapshot in the Evidently workspace."""

from __future__ import annotations

from prefect import flow, get_run_logger

from flows._project import project


@flow(name="drift-report", retries=1, retry_delay_seconds=60)
def drift_report() -> dict | None:
    from sentinel import drift_report as reports

    with project() as app:
        made = reports.make_report(app)
    if made is None:
        get_run_logger().info("no new batches since the last report")
        return None
    get_run_logger().info("report of %(batches)d batches: %(html)s", made)
    return made
