"""The ledger on SQLite and on the real PostgreSQL server: same code, same guarantees."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import IntegrityError

from sentinel.ledger import AliasMoveRow, BatchDigest, BatchRow, Ledger


@pytest.fixture(params=["sqlite", "postgres"])
def ledger(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'ledger.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    ledger = Ledger(url)
    yield ledger
    ledger.dispose()


def add_batch(ledger: Ledger, batch_id: str, sha: str) -> None:
    with ledger.transaction() as session:
        session.add(BatchRow(batch_id=batch_id, file_name=f"{batch_id}.csv", sha256=sha, rows=10, status="accepted", stored_path="x"))
        session.flush()
        session.add(BatchDigest(sha256=sha, batch_id=batch_id))


def test_one_digest_is_accepted_once(ledger):
    add_batch(ledger, "b1", "abc")
    with pytest.raises(IntegrityError):
        add_batch(ledger, "b2", "abc")
    assert [b.batch_id for b in ledger.batches()] == ["b1"]  # the failed transaction left nothing behind


def test_pending_drift_checks_and_alias_history(ledger):
    add_batch(ledger, "b1", "a")
    add_batch(ledger, "b2", "b")
    with ledger.transaction() as session:
        session.get(BatchRow, "b1").drift_status = "clear"
        session.add(AliasMoveRow(model_name="m", alias="champion", from_version=None, to_version="1", actor="sentinel", reason="first"))
        session.add(AliasMoveRow(model_name="m", alias="champion", from_version="1", to_version="2", actor="ops", reason="better"))
    assert [b.batch_id for b in ledger.batches_awaiting_drift_check()] == ["b2"]
    assert [m.to_version for m in ledger.alias_moves("m")] == ["2", "1"]  # newest first


def test_reopening_an_existing_ledger_keeps_its_rows(ledger):
    add_batch(ledger, "b1", "a")
    again = Ledger(ledger.url)
    assert again.batch("b1").sha256 == "a"
    again.dispose()


@pytest.mark.postgres
def test_the_promotion_lock_serializes_hosts_that_share_a_postgresql_ledger(postgres_url):
    """Two hosts have two lock files; the advisory lock in their shared database still lets one in."""
    import threading
    import time

    from sentinel.locks import LockTimeout, advisory_lock

    order: list[str] = []
    holding = threading.Event()

    def first():
        with advisory_lock(postgres_url, "sentinel.promotion.m", timeout=5):
            order.append("first in")
            holding.set()
            time.sleep(1.0)
            order.append("first out")

    thread = threading.Thread(target=first)
    thread.start()
    holding.wait(10)
    with pytest.raises(LockTimeout):
        with advisory_lock(postgres_url, "sentinel.promotion.m", timeout=0.2):
            pass
    with advisory_lock(postgres_url, "sentinel.promotion.m", timeout=10):
        order.append("second in")
    thread.join()
    assert order == ["first in", "first out", "second in"]
    with advisory_lock(postgres_url, "sentinel.promotion.other-model", timeout=0.2):
        pass  # another model's lock is another key


def test_work_locks_exclude_other_hosts_through_a_shared_postgresql_ledger(tmp_path, postgres_url):
    """Two hosts: two project folders (two lock files), one PostgreSQL ledger. The second host's retrain
    lock is taken while the first holds it; on SQLite only the folder's lock file counts."""
    from sentinel import locks
    from tests.conftest import make_settings

    first, second = (make_settings(tmp_path / name, ledger_url=postgres_url) for name in ("host-a", "host-b"))
    with locks.held(first, "retrain", timeout=0) as acquired:
        assert acquired
        with locks.held(second, "retrain", timeout=0) as also:
            assert not also
        with locks.held(second, "drift", timeout=0) as other_work:
            assert other_work  # another kind of work is another lock
    with locks.held(second, "retrain", timeout=0) as acquired:
        assert acquired

    alone = [make_settings(tmp_path / name) for name in ("sqlite-a", "sqlite-b")]
    with locks.held(alone[0], "retrain", timeout=0) as acquired, locks.held(alone[1], "retrain", timeout=0) as also:
        assert acquired and also  # separate folders, separate SQLite ledgers: nothing shared
    with locks.held(alone[0], "retrain", timeout=0) as acquired, locks.held(alone[0], "retrain", timeout=0) as again:
        assert acquired and not again


def test_a_number_not_measured_is_stored_as_null_so_postgresql_accepts_it(tmp_path):
    # PostgreSQL's JSON refuses the token NaN (CI: a gate decision with an unmeasured p-value failed there).
    from sentinel.ledger import Ledger, TrainingRunRow

    ledger = Ledger(f"sqlite:///{tmp_path}/nan.db")
    with ledger.transaction() as session:
        session.add(
            TrainingRunRow(run_name="r", batch_ids=[], comparison={"p_value": float("nan"), "slices": [{"e": float("inf")}], "delta": 0.5})
        )
    assert ledger.training_runs()[0].comparison == {"p_value": None, "slices": [{"e": None}], "delta": 0.5}
    ledger.dispose()


def test_a_ledger_from_before_alias_move_kinds_gets_them_from_what_sentinel_wrote(ledger):
    """The kind column is added to an older ledger and filled: its rollbacks were the moves whose
    reason Sentinel itself began with "rollback: "."""
    from sqlalchemy import text

    with ledger.transaction() as session:
        session.add(AliasMoveRow(model_name="m", alias="champion", to_version="1", actor="sentinel", reason="first"))
        session.add(AliasMoveRow(model_name="m", alias="champion", from_version="1", to_version="2", actor="ops", reason="better"))
        session.add(AliasMoveRow(model_name="m", alias="champion", from_version="2", to_version="1", actor="ops", reason="rollback: bad"))
    with ledger.engine.begin() as connection:
        connection.execute(text("ALTER TABLE alias_moves DROP COLUMN kind"))
    again = Ledger(ledger.url)
    assert [m.kind for m in again.alias_moves("m")] == ["rollback", "move", "move"]
    again.dispose()


def test_rollback_reads_the_kind_of_each_move_not_its_reason(settings):
    """A person may promote with any reason, "rollback: ..." included; only a recorded rollback pops."""
    from sentinel import promotion
    from sentinel.context import Sentinel

    app = Sentinel(settings)
    model = settings.registered_model
    with app.ledger.transaction() as session:
        session.add(AliasMoveRow(model_name=model, alias="champion", to_version="1", actor="sentinel", reason="first"))
        session.add(
            AliasMoveRow(model_name=model, alias="champion", from_version="1", to_version="2", actor="ana", reason="rollback: of a vendor")
        )
        session.add(AliasMoveRow(model_name=model, alias="champion", from_version="2", to_version="3", actor="sentinel", reason="better"))
    assert promotion._previous_champion(app) == "2"
    with app.ledger.transaction() as session:
        session.add(
            AliasMoveRow(model_name=model, alias="champion", from_version="3", to_version="2", actor="ben", reason="x", kind="rollback")
        )
    assert promotion._previous_champion(app) == "1"
    app.close()
