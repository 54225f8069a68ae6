"""Pools of small batches: a batch smaller than `intake.min_rows` is data too, but too small for a drift
test on its own, so it waits for the next small batches of its source and they are measured as one
sample. Nothing waits forever: a pool older than `intake.pool_max_age_seconds` is measured with what it
has. Reads the ledger only, so the CLI can say which batches wait without importing Evidently."""

from __future__ import annotations

from sentinel.context import Sentinel
from sentinel.ledger import BatchRow, aware, utcnow


def ready_units(app: Sentinel) -> list[list[BatchRow]]:
    """What can be measured now, oldest first: each batch of at least `intake.min_rows` rows alone, and
    small batches pooled per source, in arrival order, until a pool has that many rows. A pool that has
    waited `intake.pool_max_age_seconds` is ready with what it has; the others wait for more batches."""
    policy = app.settings.intake
    units, pools = [], {}
    for row in app.ledger.batches_awaiting_drift_check():
        if row.rows >= policy.min_rows:
            units.append([row])
            continue
        pool = pools.setdefault(row.source, [])
        pool.append(row)
        if sum(m.rows for m in pool) >= policy.min_rows:
            units.append(pools.pop(row.source))
    now = utcnow()
    for pool in pools.values():
        if (now - aware(pool[0].received_at)).total_seconds() >= policy.pool_max_age_seconds:
            units.append(pool)
    return sorted(units, key=lambda unit: aware(unit[0].received_at))


def waiting_for_pool(app: Sentinel) -> set[str]:
    """Batches that wait for more small batches of their source before they are measured."""
    ready = {m.batch_id for unit in ready_units(app) for m in unit}
    return {b.batch_id for b in app.ledger.batches_awaiting_drift_check()} - ready


def ready_batches(app: Sentinel) -> list[BatchRow]:
    """Every batch that a drift check would measure now (see `ready_units`)."""
    return [m for unit in ready_units(app) for m in unit]
