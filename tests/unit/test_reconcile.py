"""Reconcile, the periodic sweep of `sentinel up`, catches the work nobody is doing, and leaves alone the
work someone is doing."""

from __future__ import annotations

import datetime as dt

from sentinel import loop
from sentinel.ledger import DriftCheckRow
from tests.unit.test_pools import arrive, project


def checked(app, batch_id: str, seconds_ago: float) -> None:
    with app.ledger.transaction() as session:
        session.add(
            DriftCheckRow(
                batch_id=batch_id, reference_version="1", detected=False, signals=[],
                checked_at=dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=seconds_ago),
            )
        )  # fmt: skip


def test_reconcile_leaves_waiting_batches_to_a_checker_at_work_and_stands_in_for_one_gone_quiet(tmp_path):
    """Under a backlog the watcher frees the drift lock between its flow runs; a reconcile that took it
    there checked the backlog in a cold process of its own. It checks only while nobody has recorded a
    check for one interval."""
    app = project(tmp_path)
    interval = app.settings.up.reconcile_seconds
    arrive(app, "done", 500, minutes_ago=5)
    arrive(app, "waiting", 500, minutes_ago=1)
    assert not loop.checks_under_way(app, interval)  # no check yet: nobody at work
    checked(app, "done", seconds_ago=interval / 4)
    assert loop.checks_under_way(app, interval)
    assert loop.reconcile(app).checked == []  # left to the checker, which needs no MLflow here
    assert "waiting" in {b.batch_id for b in app.ledger.batches_awaiting_drift_check()}
    checked(app, "done", seconds_ago=2 * interval)  # the newest row is what counts, not the largest time
    assert not loop.checks_under_way(app, interval)
