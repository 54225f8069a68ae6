"""reconcile: on an interval, catch whatever an event missed (a file the watcher did not see, an event
the server dropped, a run that crashed). Batches waiting for their drift check are left to whoever is
checking them (`loop.checks_under_way`): a batch nobody checks waits at most two intervals."""

from __future__ import annotations

from prefect import flow, get_run_logger

from flows._project import project


@flow(name="reconcile")
def reconcile() -> dict:
    from flows._artifacts import publish_decisions, publish_verdicts
    from sentinel import loop

    with project() as app:
        done = loop.reconcile(app)
        publish_verdicts(app, done.checked)
        publish_decisions(app, done.runs)
    counts = done.counts()
    get_run_logger().info("reconcile: %(files)d files taken in, %(checked)d batches checked, %(retrains)d retrains", counts)
    return counts
