"""Locks that make Sentinel's work happen once: a file lock serializes the processes of one host; with
the ledger on PostgreSQL, an advisory lock in that database also serializes every host that shares it.
Both are freed by the operating system or the database server when their holder dies, so a crash never
leaves one taken (unlike a Prefect concurrency slot, whose lease outlived a killed run here)."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

from filelock import FileLock, Timeout

from sentinel.settings import Settings


class LockTimeout(TimeoutError):
    """A lock was not acquired in time: another process holds it."""

    pass


@contextmanager
def advisory_lock(url: str, name: str, timeout: float, poll: float = 0.1) -> Iterator[None]:
    """A PostgreSQL session advisory lock, held on a connection of its own; the server releases it if
    this process dies. A negative timeout waits for ever."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            deadline = time.monotonic() + (timeout if timeout >= 0 else float("inf"))
            while not connection.execute(text("select pg_try_advisory_lock(:key)"), {"key": key}).scalar():
                if time.monotonic() > deadline:
                    raise LockTimeout(f"another process has held the lock {name} for {timeout:.0f} s")
                time.sleep(poll)
            try:
                yield
            finally:
                connection.execute(text("select pg_advisory_unlock(:key)"), {"key": key})
    finally:
        engine.dispose()


@contextmanager
def held(settings: Settings, name: str, timeout: float = -1) -> Iterator[bool]:
    """Hold the lock `name` (this host's `<home>/<name>.lock`, plus the advisory lock `sentinel.<name>`
    when the ledger is on PostgreSQL). Yields False, holding nothing, if it is not free within `timeout`
    seconds (0: do not wait; negative: wait for ever)."""
    settings.home.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        try:
            stack.enter_context(FileLock(str(settings.home / f"{name}.lock"), timeout=timeout))
            if settings.ledger_url.startswith("postgresql"):
                stack.enter_context(advisory_lock(settings.ledger_url, f"sentinel.{name}", timeout))
        except (Timeout, LockTimeout):
            acquired = False
        else:
            acquired = True
        if not acquired:
            stack.close()
        yield acquired


@contextmanager
def promotion_lock(settings: Settings, timeout: float = 120.0) -> Iterator[None]:
    """Every alias move, everywhere: MLflow's alias write is last-writer-wins, so moves are serialized and
    each re-reads the aliases inside. Raises LockTimeout after `timeout` seconds."""
    with held(settings, f"promotion.{settings.registered_model}", timeout) as acquired:
        if not acquired:
            raise LockTimeout(f"another process has held the promotion lock for {timeout:.0f} s")
        yield
