"""Serve Sentinel's four deployments from one long-lived process: `python -m deployments.serve`.

`sentinel up` starts this with the project's settings in the environment. The deployments, their
triggers and schedules come from `declared.py`, the same declaration `prefect.yaml` is generated from;
restarting this process re-applies them, so the deployments that stopping it paused come back as they were.
"""

from __future__ import annotations

from pathlib import Path

from prefect import serve
from prefect.events import DeploymentEventTrigger

from deployments import notifications
from deployments.declared import declared
from flows.drift_check import drift_check
from flows.drift_report import drift_report
from flows.reconcile import reconcile
from flows.retrain import retrain
from sentinel.settings import Settings, load_settings

FLOWS = {flow.name: flow for flow in (drift_check, retrain, drift_report, reconcile)}


def deployments(settings: Settings, source: Path | None = None) -> list:
    """The four deployments. With `source` (a checkout of this repository), each flow is loaded from it,
    so a work pool's workers can run it from there; without, they are served from this process."""
    built = []
    for d in declared(settings.up):
        flow = FLOWS[d.name] if source is None else FLOWS[d.name].from_source(source=str(source), entrypoint=d.entrypoint)
        triggers = [DeploymentEventTrigger(**{k: v for k, v in t.items() if k != "type"}) for t in d.triggers]
        built.append(
            flow.to_deployment(name=d.name, description=d.description, triggers=triggers or None, tags=["sentinel"], **(d.schedule or {}))
        )
    return built


def main() -> None:
    """Configure the notifications, then serve until stopped."""
    settings = load_settings()
    notifications.configure(settings)
    # Each run is a new process of a few hundred MB; a bound keeps a flood of events from exhausting
    # memory (further runs wait their turn, and most find their work done).
    serve(*deployments(settings), print_starting_message=False, limit=settings.up.flow_processes)


if __name__ == "__main__":
    main()
