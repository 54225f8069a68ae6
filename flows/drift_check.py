"""drift-check: measure every batch awaiting its drift check. Triggered by `sentinel.batch.accepted`;
`sentinel up`'s watcher also calls it right after intake, in its own warm process."""

from __future__ import annotations

from prefect import flow

from flows._project import project


@flow(name="drift-check", retries=2, retry_delay_seconds=15)
def drift_check(batch_id: str | None = None, limit: int | None = None) -> list[str]:
    """`batch_id` names the batch whose event started the run; every pending batch is checked (at most
    `limit`, oldest first: the watcher checks a few per run, so verdicts show as they come)."""
    from flows._artifacts import publish_verdicts
    from sentinel.drift_checks import check_pending

    with project() as app:
        # Whoever holds the drift lock checks every pending batch, this one included: wait only briefly.
        checked = check_pending(app, timeout=5, limit=limit)
        publish_verdicts(app, checked)
    return checked
