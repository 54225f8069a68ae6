"""Which MLflow the read commands ask over REST, and that they ask the client when REST cannot answer.
(The answers themselves are compared with the client's against real servers: tests/integration
test_servers.py and test_up.py.)"""

from __future__ import annotations

import json
import subprocess
import sys

from sentinel.registry_view import RestRegistryView, SqlRegistryView, VersionInfo, open_view, server_url
from sentinel.up_state import write_state
from tests.conftest import make_settings
from tests.harness import free_port


def test_a_tracking_server_is_asked_directly(tmp_path):
    settings = make_settings(tmp_path, mlflow_tracking_uri="http://127.0.0.1:5005/")
    assert server_url(settings) == "http://127.0.0.1:5005"


def test_the_default_store_is_read_through_a_running_sentinel_up_only(tmp_path):
    settings = make_settings(tmp_path)
    assert server_url(settings) is None  # no `sentinel up` has run here
    write_state(settings, {"mlflow": {"pid": None, "url": "http://127.0.0.1:5006"}})  # this process plays the supervisor
    assert server_url(settings) == "http://127.0.0.1:5006"

    # a state file left by a supervisor that has died names a port someone else may hold now
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    state = json.loads(settings.state_path.read_text())
    settings.state_path.write_text(json.dumps(state | {"supervisor_pid": dead.pid}))
    assert server_url(settings) is None


def test_a_server_that_serves_another_store_is_not_asked(tmp_path):
    settings = make_settings(tmp_path, up={"mlflow_backend_store": "postgresql+psycopg://mlflow@127.0.0.1:5432/mlflow"})
    write_state(settings, {"mlflow": {"pid": None, "url": "http://127.0.0.1:5006"}})
    assert server_url(settings) is None  # the CLI's own store is the SQLite file, not what the server serves


class Recorder:
    """The registry the view falls back to: records what it was asked."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def versions(self):
        self.asked.append("versions")
        return [VersionInfo("1", ("champion",), {}, "run", 0)]

    def alias_version(self, alias):
        self.asked.append(f"alias {alias}")
        return "1"

    def run_experiment(self, run_id):
        self.asked.append(f"run {run_id}")
        return "0"


def test_a_server_that_does_not_answer_hands_the_question_to_the_client():
    client = Recorder()
    view = RestRegistryView(f"http://127.0.0.1:{free_port()}", "review-sentiment", lambda: client, timeout=2)
    assert view.versions()[0].version == "1"
    assert view.alias_version("champion") == "1"
    assert view.run_experiment("abc") == "0"
    assert client.asked == ["versions", "alias champion", "run abc"]


def test_without_a_server_a_database_store_is_read_directly_and_any_other_through_the_client(tmp_path):
    client = Recorder()
    assert isinstance(open_view(make_settings(tmp_path), lambda: client), SqlRegistryView)  # the default: SQLite
    assert open_view(make_settings(tmp_path, mlflow_tracking_uri=(tmp_path / "mlruns").as_uri()), lambda: client) is client


def test_the_sql_view_reads_what_mlflows_client_reads(tmp_path):
    """Versions with their tags and aliases (a deleted version left out), an alias's version, a run's
    experiment: the same answers as MLflow's client on the same SQLite store, without importing MLflow."""
    from sentinel.registry import Registry

    settings = make_settings(tmp_path)
    registry = Registry(settings)
    client, name = registry.client, settings.registered_model
    run = client.create_run(registry.experiment_id("training"))
    client.create_registered_model(name)
    for i in range(4):
        client.create_model_version(name, source=(tmp_path / f"v{i}").as_uri(), run_id=run.info.run_id if i else None)
    client.set_model_version_tag(name, "2", "sentinel.decision", "promoted")
    client.set_model_version_tag(name, "2", "sentinel.gate.metric", "accuracy")
    client.set_model_version_tag(name, "3", "sentinel.decision", "challenger")
    client.set_registered_model_alias(name, "champion", "2")
    client.set_registered_model_alias(name, "challenger", "3")
    client.set_registered_model_alias(name, "previous", "2")
    client.delete_model_version(name, "4")
    fallback = Recorder()
    view = open_view(settings, lambda: fallback)
    assert view.versions() == registry.versions() and [v.version for v in view.versions()] == ["1", "2", "3"]
    assert view.versions()[1].aliases == ("champion", "previous") and view.versions()[1].tags["sentinel.gate.metric"] == "accuracy"
    assert view.alias_version("champion") == registry.alias_version("champion") == "2"
    assert view.alias_version("nobody") is None
    assert view.run_experiment(run.info.run_id) == registry.run_experiment(run.info.run_id)
    assert fallback.asked == []


def test_the_sql_view_asks_the_client_when_there_is_no_store_yet(tmp_path):
    fallback = Recorder()
    view = open_view(make_settings(tmp_path), lambda: fallback)
    assert view.alias_version("champion") == "1" and fallback.asked == ["alias champion"]
    assert not (tmp_path / "mlflow.db").exists()  # reading created no empty database
