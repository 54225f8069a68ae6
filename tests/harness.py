"""Drive a real `sentinel up` the way a person does: start it, wait for `status` to say healthy, drop files,
watch the ledger, stop it. Used by the integration tests and the benchmarks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from sentinel import up
from sentinel.ledger import Ledger
from sentinel.settings import Settings


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(condition: Callable[[], object], timeout: float, what: str, poll: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


class UpProcess:
    """`sentinel up` for one project folder on free loopback ports."""

    def __init__(self, home: Path, **env: str) -> None:
        self.home = home
        self.env = {
            "SENTINEL_HOME": str(home),
            "SENTINEL_UP__PREFECT_PORT": str(free_port()),
            "SENTINEL_UP__MLFLOW_PORT": str(free_port()),
            "SENTINEL_UP__EVIDENTLY_PORT": str(free_port()),
        } | env
        self.process: subprocess.Popen | None = None
        self.starts = 0

    @property
    def settings(self) -> Settings:
        saved = {k: os.environ.get(k) for k in self.env}
        os.environ.update(self.env)
        try:
            return up.running_settings(Settings())
        finally:
            for key, value in saved.items():
                os.environ.pop(key) if value is None else os.environ.__setitem__(key, value)

    def start(self, timeout: float = 240) -> float:
        """Start and wait until every service is healthy; returns the seconds that took."""
        self.starts += 1
        began = time.monotonic()
        log = open(self.home / f"up-{self.starts}.log", "wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "sentinel.cli", "up"], env=os.environ | self.env, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        settings = self.settings

        def healthy():
            if self.process.poll() is not None:
                raise AssertionError(f"sentinel up exited with {self.process.returncode}:\n{self.log()}")
            return up.status(settings)["healthy"]

        wait_for(healthy, timeout, "sentinel up to be healthy", poll=0.5)
        return time.monotonic() - began

    def log(self) -> str:
        return (self.home / f"up-{self.starts}.log").read_text(errors="replace")[-5000:]

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def service_pid(self, name: str) -> int:
        return json.loads(self.settings.state_path.read_text())["services"][name]["pid"]

    def ledger(self) -> Ledger:
        return Ledger(self.settings.ledger_url)

    def prefect(self, path: str, body: dict | None = None) -> object:
        request = urllib.request.Request(
            self.settings.prefect_api_url + path,
            data=json.dumps(body or {}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)

    def flow_runs(self, deployment: str) -> list[dict]:
        """The runs of one of Sentinel's deployments, as the Prefect server lists them."""
        return self.prefect("/flow_runs/filter", {"deployments": {"name": {"any_": [deployment]}}, "limit": 200})


def settled(ledger: Ledger, files: set[str]) -> bool:
    """Every one of `files` has been taken in and, if accepted, drift-checked."""
    rows = [b for b in ledger.batches() if b.file_name in files]
    return len({b.file_name for b in rows}) == len(files) and all(b.drift_status != "pending" for b in rows)


# Runs a `sentinel` command (its arguments after `-c PROBE`), then prints on the last line of stderr
# the top-level modules it imported.
MODULES_PROBE = (
    "import sys\nfrom sentinel.cli import app\ntry:\n    app(sys.argv[1:])\nexcept SystemExit as exit:\n    assert not exit.code, exit.code\n"
    "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})), file=sys.stderr)"
)
