"""Small batches are data too: below `intake.min_rows` a batch waits for the next small batches of its
source, and the pool is measured as one sample; nothing waits longer than `intake.pool_max_age_seconds`."""

from __future__ import annotations

import datetime as dt

from sentinel import pools
from sentinel.context import Sentinel
from sentinel.ledger import BatchRow
from tests.conftest import make_settings


def project(tmp_path, **intake):
    app = Sentinel(make_settings(tmp_path, intake={"min_rows": 100, "pool_max_age_seconds": 600} | intake))
    return app


def arrive(app, batch_id: str, rows: int, source: str = "default", minutes_ago: float = 0.0) -> None:
    with app.ledger.transaction() as session:
        session.add(
            BatchRow(
                batch_id=batch_id, file_name=f"{batch_id}.csv", sha256=batch_id, rows=rows, status="accepted", source=source,
                received_at=dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=minutes_ago),
            )
        )  # fmt: skip


def units(app) -> list[list[str]]:
    return [[m.batch_id for m in unit] for unit in pools.ready_units(app)]


def test_three_small_batches_become_one_pool_once_they_have_enough_rows(tmp_path):
    app = project(tmp_path)
    arrive(app, "a", 40, minutes_ago=3)
    assert units(app) == [] and pools.waiting_for_pool(app) == {"a"}
    arrive(app, "b", 40, minutes_ago=2)
    assert units(app) == [] and pools.waiting_for_pool(app) == {"a", "b"}
    arrive(app, "c", 40, minutes_ago=1)
    assert units(app) == [["a", "b", "c"]] and pools.waiting_for_pool(app) == set()


def test_a_batch_large_enough_is_measured_alone_and_pools_keep_to_their_source(tmp_path):
    app = project(tmp_path)
    arrive(app, "big", 500, minutes_ago=5)
    arrive(app, "imdb-1", 60, "imdb", minutes_ago=4)
    arrive(app, "rt-1", 60, "rt", minutes_ago=3)
    arrive(app, "imdb-2", 60, "imdb", minutes_ago=2)
    assert units(app) == [["big"], ["imdb-1", "imdb-2"]]
    assert pools.waiting_for_pool(app) == {"rt-1"}


def test_a_pool_that_waited_too_long_is_measured_with_what_it_has(tmp_path):
    app = project(tmp_path, pool_max_age_seconds=60)
    arrive(app, "old", 30, minutes_ago=2)
    arrive(app, "young", 30, minutes_ago=0)
    assert units(app) == [["old", "young"]]  # the pool's age is its oldest member's


def test_checked_batches_leave_the_pool(tmp_path):
    app = project(tmp_path)
    arrive(app, "a", 40)
    with app.ledger.transaction() as session:
        session.get(BatchRow, "a").drift_status = "clear"
    arrive(app, "b", 40)
    assert pools.waiting_for_pool(app) == {"b"}
