"""Serve Sentinel's four deployments from one long-lived process: `python -m deployments.serve`.

`sentinel up` starts this with the project's settings in the environment. The triggers and schedules
here are the same as in `prefect.yaml`; restarting this process re-applies them, so
the deployments that stopping it paused come back as they were.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from prefect import serve
from prefect.events import DeploymentEventTrigger

from deployments import notifications
from flows.drift_check import drift_check
from flows.drift_report import drift_report
from flows.reconcile import reconcile
from flows.retrain import retrain
from sentinel import events
from sentinel.settings import Settings, load_settings

# No deployment concurrency limits: a limit's slot is held by a lease the Prefect server keeps in memory,
# and once a run was killed and the server restarted, the slot stayed taken and every later run was
# cancelled. Each flow holds a file lock instead, and a second run leaves at once (see sentinel/locks.py).


def deployments(settings: Settings, source: Path | None = None) -> list:
    """The four deployments. With `source` (a checkout of this repository), each flow is loaded from it,
    so a work pool's workers can run it from there; without, they are served from this process."""
    policy = settings.up
    batch = {"batch_id": "{{ event.resource.name }}"}

    def loaded(flow, entrypoint: str):
        return flow if source is None else flow.from_source(source=str(source), entrypoint=entrypoint)

    return [
        loaded(drift_check, "flows/drift_check.py:drift_check").to_deployment(
            name="drift-check",
            description="Measure every batch awaiting its drift check.",
            triggers=[
                # Batches whose taker checks drift itself (the watcher of `sentinel up`, reconcile) are
                # labelled "taker"; the deployment answers the others.
                DeploymentEventTrigger(
                    name="batch accepted",
                    expect={events.BATCH_ACCEPTED},
                    match={"sentinel.check": "deployment"},
                    parameters=batch,
                )
            ],
            tags=["sentinel"],
        ),
        loaded(retrain, "flows/retrain.py:retrain").to_deployment(
            name="retrain",
            description="Retrain on every unlearned batch, gate against the champion, register.",
            triggers=[
                # Reactive with a window: the first detection starts a run at once, the rest of the
                # window's detections are absorbed (that run waits for the burst and learns them all).
                DeploymentEventTrigger(name="drift detected", expect={events.DRIFT_DETECTED}, within=timedelta(seconds=policy.retrain_quiet_seconds * 3), parameters=batch)
            ],
            tags=["sentinel"],
        ),
        loaded(drift_report, "flows/drift_report.py:drift_report").to_deployment(name="drift-report", cron=policy.report_cron, description="Evidently drift report of the batches since the last one.", tags=["sentinel"]),
        loaded(reconcile, "flows/reconcile.py:reconcile").to_deployment(
            name="reconcile",
            interval=timedelta(seconds=policy.reconcile_seconds),
            description="Sweep for files, checks and retrains an event missed.",
            tags=["sentinel"],
        ),
    ]


def main() -> None:
    settings = load_settings()
    notifications.configure(settings)
    # Each run is a new process of a few hundred MB; a bound keeps a flood of events from exhausting
    # memory (further runs wait their turn, and most find their work done).
    serve(*deployments(settings), print_starting_message=False, limit=settings.up.flow_processes)


if __name__ == "__main__":
    main()
