"""The same loop against a real MLflow tracking server on a loopback port and a ledger on the real
PostgreSQL server: only URLs change."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request

import pytest
from sqlalchemy import create_engine, text

from sentinel import demo, loop, retraining
from sentinel.context import Sentinel
from sentinel.registry_view import RestRegistryView
from tests.conftest import make_settings
from tests.harness import free_port

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    """`mlflow server` started lean (one worker, no job runner), stopped by its PID afterwards."""
    folder = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    env = os.environ | {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    command = [
        sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}", "--artifacts-destination", str(folder / "artifacts"),
    ]  # fmt: skip
    log = open(folder / "server.log", "w")
    server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            if urllib.request.urlopen(f"{url}/health", timeout=2).status == 200:
                break
        except OSError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            server.kill()
            pytest.fail(f"mlflow server did not start: {(folder / 'server.log').read_text()[-2000:]}")
        time.sleep(0.5)
    yield url
    server.terminate()
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.kill()
    log.close()


def test_loop_with_mlflow_server_and_postgres_ledger(tmp_path, mlflow_server, postgres_url, imdb, rotten):
    settings = make_settings(tmp_path, ledger_url=postgres_url, mlflow_tracking_uri=mlflow_server, intake={"settle_seconds": 0.05})
    app = Sentinel(settings)
    reference = tmp_path / "reference.csv"
    imdb.head(3000).to_csv(reference, index=False)
    retraining.bootstrap(app, reference)
    demo.drop(imdb.iloc[3000:3500], settings.incoming_dir, "stable.csv")
    demo.drop(rotten.iloc[:1500], settings.incoming_dir, "rotten.csv")
    records = {r["file"]: r for r in loop.process(app)}
    assert not records["stable.csv"]["drift"]["detected"]
    assert records["rotten.csv"]["drift"]["detected"] and records["rotten.csv"]["model_version"] == "2"

    # the ledger really is on PostgreSQL, and it agrees with the registry on the server
    engine = create_engine(postgres_url)
    with engine.connect() as connection:
        assert connection.execute(text("select count(*) from batches where status = 'accepted'")).scalar() == 3  # reference + 2
        moves = connection.execute(text("select alias, to_version from alias_moves order by id")).all()
    engine.dispose()
    champion = app.registry.alias_version("champion")
    assert moves[0] == ("champion", "1")
    assert [m for m in moves if m[0] == "champion"][-1][1] == champion
    # the model is loaded back through the server, digest checked
    assert len(app.load_model(app.champion()).predict(imdb.iloc[:10][["text"]])) == 10
    # read commands ask the server's REST API and hear what MLflow's client hears
    assert isinstance(app.registry_view, RestRegistryView)
    assert app.registry_view.versions() == app.registry.versions() and len(app.registry.versions()) == 2
    assert app.registry_view.alias_version("champion") == champion and app.registry_view.alias_version("nobody") is None
    run_id = app.registry.versions()[-1].run_id
    assert app.registry_view.run_experiment(run_id) == app.registry.run_experiment(run_id)
    app.close()
