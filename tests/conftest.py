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
    """Settings for a project in `home`, independent of the caller's environment and sentinel.toml."""
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
