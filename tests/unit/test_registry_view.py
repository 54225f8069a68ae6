"""Which MLflow the read commands ask over REST, and that they ask the client when REST cannot answer.
(The answers themselves are compared with the client's against real servers: tests/integration
test_servers.py and test_up.py.)"""

from __future__ import annotations

import json
import subprocess
import sys

from sentinel.registry_view import RestRegistryView, VersionInfo, open_view, server_url
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


def test_without_a_server_the_view_is_the_client_itself(tmp_path):
    client = Recorder()
    assert open_view(make_settings(tmp_path), lambda: client) is client
