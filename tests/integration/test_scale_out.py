"""Sentinel scaled out by settings alone, on the real PostgreSQL server: the ledger, MLflow's backend store
and the Prefect server each in a database of their own, MLflow artifacts proxied by the tracking server,
and the flows run by two Prefect workers polling the process work pool instead of a serve process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from sentinel import demo
from sentinel.context import Sentinel
from tests.harness import UpProcess, settled, wait_for

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def databases(postgres_server):
    """Three fresh databases, dropped afterwards: ledger, mlflow, prefect."""
    admin = create_engine(postgres_server, isolation_level="AUTOCOMMIT")
    names = {part: f"sentinel_{part}_{uuid.uuid4().hex[:8]}" for part in ("ledger", "mlflow", "prefect")}
    with admin.connect() as connection:
        for name in names.values():
            connection.execute(text(f'create database "{name}"'))
    server = postgres_server.rsplit("/", 1)[0].split("://", 1)[1]  # postgres@127.0.0.1:5432
    yield {part: f"{server}/{name}" for part, name in names.items()}
    with admin.connect() as connection:
        for name in names.values():
            connection.execute(text(f'drop database if exists "{name}" with (force)'))
    admin.dispose()


@pytest.fixture(scope="module")
def scaled(tmp_path_factory, databases, imdb):
    home = tmp_path_factory.mktemp("scaled")
    shared = tmp_path_factory.mktemp("object-store")  # stands in for s3://…: only the MLflow server writes here
    reference = home / "reference.csv"
    imdb.head(3000).to_csv(reference, index=False)
    project = UpProcess(
        home,
        SENTINEL_LEDGER_URL=f"postgresql+psycopg://{databases['ledger']}",
        SENTINEL_UP__MLFLOW_BACKEND_STORE=f"postgresql+psycopg://{databases['mlflow']}",
        SENTINEL_UP__MLFLOW_ARTIFACTS_DESTINATION=shared.as_uri(),
        SENTINEL_UP__PREFECT_DATABASE_URL=f"postgresql+asyncpg://{databases['prefect']}",
        SENTINEL_UP__FLOW_RUNNER="workers",
        SENTINEL_UP__WORKERS="2",
        SENTINEL_UP__CHECK_INLINE="false",  # drift checks too are flow runs on the workers
        SENTINEL_REFERENCE_CSV=str(reference),
        SENTINEL_UP__RETRAIN_QUIET_SECONDS="3",
        SENTINEL_UP__RECONCILE_SECONDS="20",
    )
    project.start()
    yield project, shared
    project.stop()
    assert project.process.returncode == 0, project.log()


def column(url: str, query: str) -> list:
    engine = create_engine(f"postgresql+psycopg://{url}")
    try:
        with engine.connect() as connection:
            return list(connection.execute(text(query)).scalars())
    finally:
        engine.dispose()


def count(url: str, query: str) -> int:
    return column(url, query)[0]


def test_everything_runs_on_postgresql_with_two_workers_and_proxied_artifacts(scaled, databases, imdb, rotten):
    running, shared = scaled
    status = subprocess.run(
        [sys.executable, "-m", "sentinel.cli", "status", "--json"], env=os.environ | running.env, capture_output=True, text=True, timeout=60
    )
    document = json.loads(status.stdout)
    assert status.returncode == 0 and document["healthy"], document
    assert set(document["services"]["flows"]["workers"]) == {"worker-1", "worker-2"}
    # the database URL (a password, in real life) is not on the MLflow server's command line
    assert "postgresql" not in Path(f"/proc/{running.service_pid('mlflow')}/cmdline").read_text()

    files = {"scaled-stable.csv", "scaled-rotten.csv"}
    demo.drop(imdb.iloc[3000:3500], running.settings.incoming_dir, "scaled-stable.csv")
    demo.drop(rotten.iloc[:2000], running.settings.incoming_dir, "scaled-rotten.csv")
    ledger = running.ledger()
    try:
        wait_for(lambda: settled(ledger, files), 240, "drift checks run by the workers")
        wait_for(lambda: not ledger.unanswered_drift(), 400, "the retrain run by a worker")
        rows = [b for b in ledger.batches() if b.file_name in files]
        assert sorted(b.file_name for b in rows) == sorted(files)
        assert all(len(ledger.drift_checks(b.batch_id)) == 1 for b in rows)
        rotten_batch = next(b for b in rows if b.file_name == "scaled-rotten.csv")
        assert rotten_batch.drift_status == "detected" and rotten_batch.trained_in is not None
    finally:
        ledger.dispose()

    # The flow runs were the work pool's, and both workers are polling it.
    request = urllib.request.Request(
        f"{running.settings.prefect_api_url}/flow_runs/filter",
        data=json.dumps({"limit": 200}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        runs = json.load(response)
    finished = [r for r in runs if r["state_type"] == "COMPLETED"]
    assert finished and all(r["work_pool_name"] == "sentinel" for r in finished)
    workers = running.prefect("/work_pools/sentinel/workers/filter", {})
    assert sorted(w["name"] for w in workers if w["status"] == "ONLINE") == ["sentinel-1", "sentinel-2"]

    # Each part's records are in its own PostgreSQL database; the model files are in the artifact store.
    assert count(databases["ledger"], "select count(*) from batches") >= 3
    assert count(databases["mlflow"], "select count(*) from model_versions") >= 2
    # (a periodic reconcile may finish between the two reads, so the database may hold more than the API listed)
    stored = set(column(databases["prefect"], "select id::text from flow_run where state_type = 'COMPLETED'"))
    assert {r["id"] for r in finished} <= stored
    assert list(shared.rglob("model.pkl")), "no model in the artifact store"
    app = Sentinel(running.settings)
    try:
        champion = app.champion()
        assert app.load_model(champion).predict(imdb.iloc[:3][["text"]]).shape == (3,)  # fetched through the server, digest checked
    finally:
        app.close()
