"""The Evidently UI served from the supervisor's process: the project's workspace on a real port, its own
log, restarted by the supervisor when its server stops, its port closed by the stop."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.request

import pytest

from sentinel import drift, evidently_workspace
from sentinel.evidently_ui import EvidentlyUI
from sentinel.up import Supervisor, http_ok, wait_ready
from tests.harness import free_port


def projects(url: str) -> list[str]:
    with urllib.request.urlopen(f"{url}/api/projects", timeout=10) as response:
        return [p["name"] for p in json.load(response)]


def ui_for(settings, port: int) -> EvidentlyUI:
    url = f"http://127.0.0.1:{port}"
    return EvidentlyUI(
        "evidently",
        "127.0.0.1",
        port,
        settings.evidently_dir,
        url,
        lambda: http_ok(f"{url}/api/version"),
        settings.prefect_home / "logs" / "evidently-ui.log",
    )


def test_the_ui_serves_the_workspace_and_is_restarted_when_its_server_stops(settings):
    evidently_workspace.ensure_project(settings.evidently_dir, drift.DESCRIPTORS)
    ui = ui_for(settings, free_port())
    supervisor = Supervisor(settings, say=lambda line: None)
    supervisor.children = [ui]
    supervisor._start(ui)
    wait_ready([ui], time.monotonic() + 60)
    assert projects(ui.url) == ["sentinel"]
    watcher = threading.Thread(target=supervisor.watch_children, daemon=True)
    watcher.start()
    first = ui.thread
    ui.server.should_exit = True  # its server stops as after a crash: the supervisor starts another
    deadline = time.monotonic() + 30
    while (ui.restarts < 1 or not ui.ready()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert ui.restarts == 1 and ui.thread is not first and projects(ui.url) == ["sentinel"]
    supervisor.stop()
    watcher.join(timeout=10)
    assert not ui.alive() and not watcher.is_alive()
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", ui.port)) != 0  # the port is closed
    log = ui.log_path.read_text()
    assert "/api/projects" in log and "Uvicorn running" in log  # uvicorn's lines in the UI's log, once per start


def test_a_ui_that_cannot_take_its_port_fails_the_start_with_its_log(settings):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        ui = ui_for(settings, taken.getsockname()[1])
        ui.start({})
        with pytest.raises(Exception, match="evidently exited while starting") as raised:
            wait_ready([ui], time.monotonic() + 60)
    assert "address already in use" in str(raised.value).lower()
    assert ui.ended().startswith("its server stopped")
