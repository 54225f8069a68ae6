"""Shared fixtures: real reviews, isolated project folders, and a fresh PostgreSQL database."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import create_engine, text

from sentinel import demo
from sentinel.settings import Settings

POSTGRES_ADMIN_URL = os.environ.get("SENTINEL_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="session")
def imdb() -> pd.DataFrame:
    return demo.reviews("imdb")


@pytest.fixture(scope="session")
def rotten() -> pd.DataFrame:
    return demo.reviews("rotten_tomatoes")


def make_settings(home: Path, **overrides) -> Settings:
    """Settings for a project in `home`, independent of the caller's environment and sentinel.toml. The
    model search at bootstrap is off unless asked for: it has its own tests (test_tuning), and every
    other test's first champion is then today's model, whatever the search would choose. A retrain
    that `reconcile` starts lets a burst settle for 1 s, not 10: no test drops files behind its back."""
    overrides.setdefault("tune", {"at_bootstrap": False})
    overrides.setdefault("up", {"retrain_quiet_seconds": 1})
    settings = Settings(home=home, **overrides)
    settings.ensure_dirs()
    return settings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path, intake={"settle_seconds": 0.05})


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """The PostgreSQL server every machine of this project runs. Unreachable is a failure, not a skip:
    the ledger's PostgreSQL support is only proven if these tests run."""
    engine = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(text("select 1"))
    except Exception as error:  # pragma: no cover - the machine is broken
        pytest.fail(f"PostgreSQL at {POSTGRES_ADMIN_URL} is unreachable: {error}")
    finally:
        engine.dispose()
    return POSTGRES_ADMIN_URL


@pytest.fixture
def postgres_url(postgres_server: str):
    """A fresh database for one test, dropped afterwards."""
    name = f"sentinel_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(postgres_server, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'create database "{name}"'))
    url = postgres_server.rsplit("/", 1)[0] + f"/{name}"
    yield url
    with admin.connect() as connection:
        connection.execute(text(f'drop database if exists "{name}" with (force)'))
    admin.dispose()


def write_csv(path: Path, frame: pd.DataFrame) -> Path:
    frame.to_csv(path, index=False)
    return path


# Running in parallel (`pytest -n 2`, as `make test` does): the tests of a module share its project
# (module-scoped fixtures, and tests that run in order), so a module runs whole on one worker
# (xdist's loadscope), except the crash points, which copy one snapshot per test and spread over the
# workers. The longest modules start first, so that no worker is left with a long one at the end while
# the other idles.
SPREAD = ("tests/integration/test_crash_points.py::",)
LONGEST_FIRST = [
    "tests/integration/test_up.py",
    "tests/e2e/test_replay.py",
    "tests/integration/test_operations.py",
    "tests/e2e/test_loop.py",
    "tests/integration/test_replay.py",
    "tests/integration/test_crash_points.py",
    "tests/integration/test_scale_out.py",
    "tests/integration/test_watch_and_report.py",
]


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))  # stable: a module's own order is kept


def pytest_xdist_make_scheduler(config, log):
    from xdist.scheduler import LoadScopeScheduling

    class ModulesWhole(LoadScopeScheduling):
        """A module per worker, in order; a test of SPREAD is a scope of its own."""

        def _split_scope(self, nodeid: str) -> str:
            return nodeid if nodeid.startswith(SPREAD) else super()._split_scope(nodeid)

    return ModulesWhole(config, log)
