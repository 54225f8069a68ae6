"""`sentinel up`: the Prefect server, the MLflow server, the served deployments and the watcher, on one
machine, all bound to `up.host`, all stopped by Ctrl-C.

Sentinel starts the Prefect and MLflow servers as child processes rather than in-process because each
owns its own event loop, workers and database; a child that dies is restarted. The Evidently UI is
served from this process (`sentinel.evidently_ui`): the watcher here imports Evidently anyway, and a
process of its own held 235 MB. The state file under `.prefect/` tells `sentinel status` what is running.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from sentinel import intake
from sentinel.child_process import Service
from sentinel.errors import SentinelError
from sentinel.evidently_ui import EvidentlyUI
from sentinel.settings import Settings
from sentinel.terminal import stop_like_ctrl_c
from sentinel.up_state import WORK_POOL, pid_alive, read_state, write_state

Supervised = Service | EvidentlyUI  # what the supervisor starts, checks, restarts and stops
STARTUP_SECONDS = 180.0
BOOTSTRAP_SECONDS = 1800.0  # the first champion on a large reference; every child process has a deadline


def prefect_api_url(settings: Settings) -> str:
    """The Prefect API of `sentinel up`: the configured URL, else the local server's."""
    return settings.prefect_api_url or f"http://{settings.up.host}:{settings.up.prefect_port}/api"


def mlflow_url(settings: Settings) -> str:
    """The tracking URI of the local MLflow server of `sentinel up`."""
    return f"http://{settings.up.host}:{settings.up.mlflow_port}"


def evidently_url(settings: Settings) -> str:
    """The Evidently UI that `sentinel up` serves on the project's workspace."""
    return f"http://{settings.up.host}:{settings.up.evidently_port}"


def running_settings(settings: Settings) -> Settings:
    """The settings every process of `sentinel up` uses: Prefect and MLflow through their servers."""
    return settings.model_copy(update={"prefect_api_url": prefect_api_url(settings), "mlflow_tracking_uri": mlflow_url(settings)})


def child_env(settings: Settings) -> dict[str, str]:
    """The environment of the servers, the flow runs, and this process: the Prefect client's own
    settings, plus every Sentinel setting spelled out, so a flow run reads exactly these settings."""
    env = {
        "PREFECT_API_URL": settings.prefect_api_url,
        "PREFECT_HOME": str(settings.prefect_home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_API_HOST": settings.up.host,
        "MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri,
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",  # the job runner costs seconds and GB we do not use
        "DO_NOT_TRACK": "1",
        "SENTINEL_HOME": str(settings.home),
    }
    for name, value in settings.model_dump(mode="json", exclude={"home"}, exclude_none=True).items():
        env[f"SENTINEL_{name.upper()}"] = json.dumps(value) if isinstance(value, dict) else str(value)
    return env


def http_ok(url: str, timeout: float = 2.0) -> bool:
    """True when the URL answers 200 within `timeout` seconds."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status == 200
    except (OSError, ValueError):
        return False


def _executable(name: str) -> str:
    found = Path(sys.executable).parent / name
    return str(found) if found.exists() else (shutil.which(name) or name)


def plan(settings: Settings) -> list[Supervised]:
    """The children of `sentinel up`, in start order: the servers (Prefect, MLflow, and the Evidently UI,
    served from this process, unless its port is 0), then what runs the flows (the serve process, or
    `up.workers` Prefect workers polling the `sentinel` work pool)."""
    logs = settings.prefect_home / "logs"
    policy = settings.up
    api = settings.prefect_api_url
    prefect = Service(
        "prefect",
        [_executable("prefect"), "server", "start", "--host", policy.host, "--port", str(policy.prefect_port)],
        api.removesuffix("/api"),
        lambda: http_ok(f"{api}/health"),
        logs / "prefect-server.log",
        env={"PREFECT_SERVER_DATABASE_CONNECTION_URL": policy.prefect_database_url} if policy.prefect_database_url else {},
    )
    if policy.mlflow_artifacts_destination:
        # Proxied: clients send and fetch artifacts through the server and need no access to the store.
        artifacts = ["--serve-artifacts", "--artifacts-destination", policy.mlflow_artifacts_destination]
    else:
        # Plain local files: `sentinel process`, `predict` and the tests read the same models whether or
        # not the server runs.
        artifacts = ["--default-artifact-root", settings.artifacts_dir.as_uri(), "--no-serve-artifacts"]
    mlflow = Service(
        "mlflow",
        [
            sys.executable,
            "-m",
            "sentinel.mlflow_server",  # `mlflow server`, without its launcher process
            "--host",
            policy.host,
            "--port",
            str(policy.mlflow_port),
            "--workers",
            "1",
            *artifacts,
        ],  # fmt: skip
        settings.mlflow_tracking_uri,
        lambda: http_ok(f"{settings.mlflow_tracking_uri}/health"),
        logs / "mlflow-server.log",
        # In the environment, not on the command line, where anyone on the machine could read a password.
        env={"MLFLOW_BACKEND_STORE_URI": policy.mlflow_backend_store or f"sqlite:///{settings.home / 'mlflow.db'}"},
    )
    servers = [prefect, mlflow]
    if policy.evidently_port:
        ui = evidently_url(settings)
        servers.append(
            EvidentlyUI(
                "evidently",
                policy.host,
                policy.evidently_port,
                settings.evidently_dir,
                ui,
                lambda: http_ok(f"{ui}/api/version"),
                logs / "evidently-ui.log",
            )
        )
    deployments_url = f"{api.removesuffix('/api')}/deployments"
    ready = lambda: deployments_status(settings) == "ready"  # noqa: E731
    if policy.flow_runner == "workers":
        runners = [
            Service(
                f"worker-{i}",
                [
                    _executable("prefect"),
                    "worker",
                    "start",
                    "--pool",
                    WORK_POOL,
                    "--type",
                    "process",
                    "--name",
                    f"sentinel-{i}",
                    "--limit",
                    str(policy.flow_processes),
                ],
                deployments_url,
                ready,
                logs / f"worker-{i}.log",
            )
            for i in range(1, policy.workers + 1)
        ]
    else:
        runners = [Service("flows", [sys.executable, "-m", "deployments.serve"], deployments_url, ready, logs / "flows.log")]
    return [*servers, *runners]


SERVERS = ("prefect", "mlflow", "evidently")  # started first; the flow runners need the first two
# What each child's command line shows, so a restart stops only our own orphans.
MARKERS = {"prefect": "prefect", "mlflow": "mlflow", "flows": "deployments.serve", "worker": "worker start"}


DEPLOYMENTS = ("drift-check/drift-check", "retrain/retrain", "drift-report/drift-report", "reconcile/reconcile")


def deployments_status(settings: Settings) -> str:
    """ "ready" when a runner polls for every deployment, else what is missing."""
    missing = []
    for name in DEPLOYMENTS:
        try:
            with urllib.request.urlopen(f"{settings.prefect_api_url}/deployments/name/{name}", timeout=2) as response:
                found = json.load(response)
        except (OSError, ValueError):
            missing.append(name)
            continue
        if found.get("status") != "READY" or found.get("paused"):
            missing.append(name)
    return "ready" if not missing else "waiting for " + ", ".join(missing)


def _command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def reap_orphans(settings: Settings, say: Callable[[str], None]) -> None:
    """A supervisor that was killed (kill -9, a crash) leaves its children running and holding the ports.
    Stop those, and only those: the PIDs recorded in our own state file whose command line still shows
    the command we started (a recycled PID belongs to someone else)."""
    if not settings.state_path.exists():
        return
    state = read_state(settings)
    if state.get("supervisor_pid") != os.getpid() and pid_alive(state.get("supervisor_pid")):
        raise SentinelError(f"`sentinel up` is already running for {settings.home} (pid {state['supervisor_pid']}); see `sentinel status`")
    for name, entry in state.get("services", {}).items():
        pid = entry.get("pid")
        if pid_alive(pid) and MARKERS.get(name.split("-")[0], "\0") in _command_line(pid):
            say(f"stopping the {name} left running by a previous `sentinel up` (pid {pid})")
            try:
                os.killpg(pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            deadline = time.monotonic() + 15
            while pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.2)
            if pid_alive(pid):
                os.killpg(pid, signal.SIGKILL)
    settings.state_path.unlink(missing_ok=True)


def check_ports(settings: Settings) -> None:
    """Refuse to start when a port of ours is taken, naming the setting that moves it."""
    ports = [
        ("prefect_port", settings.up.prefect_port),
        ("mlflow_port", settings.up.mlflow_port),
        ("evidently_port", settings.up.evidently_port),
    ]
    for name, port in [(n, p) for n, p in ports if p]:
        with socket.socket() as probe:
            if probe.connect_ex((settings.up.host, port)) == 0:
                raise SentinelError(
                    f"port {port} on {settings.up.host} is taken (is `sentinel up` running already? see `sentinel status`); "
                    f"stop what uses it or set SENTINEL_UP__{name.upper()}"
                )


def wait_ready(services: list[Supervised], deadline: float) -> None:
    """Wait until every service is ready; fail with its log's tail if one exits or the deadline passes."""
    waiting = list(services)
    while waiting:
        for service in list(waiting):
            if not service.alive():
                tail = service.log_path.read_text(errors="replace")[-1500:] if service.log_path.exists() else ""
                raise SentinelError(f"{service.name} exited while starting; its log {service.log_path} ends with:\n{tail}")
            if service.ready():
                waiting.remove(service)
        if waiting and time.monotonic() > deadline:
            raise SentinelError(
                f"{', '.join(s.name for s in waiting)} not ready after {STARTUP_SECONDS:.0f} s; see the logs in {services[0].log_path.parent}"
            )
        time.sleep(0.3)


# ---- the state file `sentinel status` reads -----------------------------------------------------
def record_state(settings: Settings, services: list[Supervised]) -> None:
    """Record the supervisor's and each child's PID for `sentinel status`."""
    write_state(settings, {s.name: {"pid": s.pid, "url": s.url} for s in services})


def status(settings: Settings) -> dict:
    """What `sentinel status --json` prints: each service's health and URL, and the work waiting."""
    from sentinel.ledger import Ledger

    settings = running_settings(settings)
    state = read_state(settings)
    supervisor = pid_alive(state.get("supervisor_pid"))
    pids = {name: entry.get("pid") for name, entry in state["services"].items()}
    services = {
        "prefect": {"healthy": http_ok(f"{settings.prefect_api_url}/health"), "url": settings.prefect_api_url.removesuffix("/api")},
        "mlflow": {"healthy": http_ok(f"{settings.mlflow_tracking_uri}/health"), "url": settings.mlflow_tracking_uri},
        "flows": {"healthy": False, "url": f"{settings.prefect_api_url.removesuffix('/api')}/deployments"},
        "watcher": {"healthy": supervisor, "url": str(settings.incoming_dir)},
    }
    if settings.up.evidently_port:
        ui = evidently_url(settings)
        services["evidently"] = {"healthy": http_ok(f"{ui}/api/version"), "url": ui}
    if services["prefect"]["healthy"]:
        detail = deployments_status(settings)
        runners = [pid for name, pid in pids.items() if name == "flows" or name.startswith("worker-")]
        services["flows"]["healthy"] = detail == "ready" and bool(runners) and all(pid_alive(pid) for pid in runners)
        services["flows"]["detail"] = detail
    for name, pid in pids.items():
        if name.startswith("worker-"):
            services["flows"].setdefault("workers", {})[name] = pid
        else:
            services.setdefault(name, {})["pid"] = pid
    ledger = Ledger(settings.ledger_url)
    try:
        awaiting = len(ledger.batches_awaiting_drift_check())
        unanswered = len(ledger.unanswered_drift())
    finally:
        ledger.dispose()
    pending = {"files": len(intake.pending_files(settings)), "drift_checks": awaiting, "unanswered_drift": unanswered}
    return {"healthy": all(s["healthy"] for s in services.values()), "services": services, "pending": pending}


# ---- the supervisor -----------------------------------------------------------------------------
class Supervisor:
    """Starts the children, restarts one that dies, stops them all in reverse order."""

    def __init__(self, settings: Settings, say: Callable[[str], None]) -> None:
        self.settings = settings
        self.say = say
        self.env = child_env(settings)
        self.children = plan(settings)
        self.stopping = threading.Event()
        self.lifecycle = threading.Lock()  # a restart and the stop never interleave

    def _start(self, service: Supervised) -> None:
        service.start(self.env, self.settings.up.log_max_bytes, self.settings.up.log_backups)

    def start(self) -> None:
        """Stop our orphans, check the ports, start the servers and wait until they answer."""
        reap_orphans(self.settings, self.say)
        check_ports(self.settings)
        deadline = time.monotonic() + STARTUP_SECONDS
        servers = [c for c in self.children if c.name in SERVERS]
        for service in servers:
            self._start(service)
        record_state(self.settings, self.children)
        wait_ready(servers, deadline)

    def start_flows(self) -> None:
        """Start what runs the flows (deploying onto the work pool first, with workers)."""
        runners = [c for c in self.children if c.name not in SERVERS]
        if self.settings.up.flow_runner == "workers":
            # The deployments go onto the work pool first; the workers then find them there.
            deployed = subprocess.run(
                [sys.executable, "-m", "deployments.workers"],
                env=os.environ | self.env,
                capture_output=True,
                text=True,
                timeout=STARTUP_SECONDS,
            )
            if deployed.returncode != 0:
                raise SentinelError(
                    f"deploying onto the work pool {WORK_POOL} failed: {(deployed.stderr or deployed.stdout).strip()[-1500:]}"
                )
        for runner in runners:
            self._start(runner)
        record_state(self.settings, self.children)
        wait_ready(runners, time.monotonic() + STARTUP_SECONDS)

    def watch_children(self) -> None:
        """Restart a child that died (after a pause, so a crash loop does not spin)."""
        while not self.stopping.wait(2.0):
            for service in self.children:
                ended = service.ended()
                if ended and not self.stopping.is_set():
                    service.restarts += 1
                    self.say(f"{service.name} {ended}; restarting it (restart {service.restarts})")
                    if self.stopping.wait(min(30, 2 * service.restarts)):
                        return
                    with self.lifecycle:
                        if self.stopping.is_set():
                            return  # the stop began during the pause: nothing is started after it
                        self._start(service)
                        record_state(self.settings, self.children)

    def stop(self) -> None:
        """Stop every child, last started first, and remove the state file. A restart under way finishes
        first (then sees the stop); none begins after it."""
        self.stopping.set()
        with self.lifecycle:
            for service in reversed(self.children):
                service.stop()
        self.settings.state_path.unlink(missing_ok=True)


def ensure_champion(app, env: dict[str, str], say: Callable[[str], None]) -> None:
    """A newcomer sees the loop work at once: without a champion, train one on the reference in the
    settings, or on 5,000 of the demo's IMDB reviews. In a child process: a fit leaves this long-lived
    process's heap hundreds of MB larger for good."""
    if app.champion() is not None:
        return
    reference = app.settings.reference_csv
    source = ["--reference", str(reference)] if reference else ["--demo", "5000"]
    say(f"no champion yet: training one on {reference or '5,000 IMDB reviews from the demo data'} …")
    try:
        trained = subprocess.run(
            [sys.executable, "-m", "sentinel.cli", "bootstrap", *source],
            env=os.environ | env,
            capture_output=True,
            text=True,
            timeout=BOOTSTRAP_SECONDS,
        )
    except subprocess.TimeoutExpired:
        raise SentinelError(
            f"training the first champion took over {BOOTSTRAP_SECONDS:.0f} s and was stopped; run `sentinel bootstrap` by hand"
        ) from None
    if trained.returncode != 0:
        raise SentinelError(f"the first champion could not be trained: {(trained.stderr or trained.stdout).strip()[-1500:]}")
    say(trained.stdout.strip().splitlines()[-1])


def follow_training(app, say: Callable[[str], None], stop: threading.Event) -> None:
    """Print each retrain as it finishes; retrains run in the deployment's own processes."""
    seen = len(app.ledger.training_runs())
    while not stop.wait(2.0):
        try:
            runs = app.ledger.training_runs()
        except Exception:
            continue
        for run in runs[seen:]:
            say(f"retrain {run.run_name}: version {run.model_version} {run.decision} — {run.reason}")
        seen = len(runs)


InlineCheck = Callable[[object, Callable[[str], None]], Callable[[str], list[str]]]


def run(settings: Settings, say: Callable[[str], None], notify: Callable[[str, object], None], inline_check: InlineCheck) -> None:
    """Everything, until Ctrl-C or SIGTERM. `inline_check(app, say)` makes the watcher's drift check; the
    Prefect layer passes one that runs the drift-check flow (`deployments/up.py`)."""
    from sentinel import drift, evidently_workspace
    from sentinel.context import Sentinel
    from sentinel.watcher import Watcher

    if problem := settings.up.exposure_problem():
        raise SentinelError(problem)
    settings = running_settings(settings)
    settings.ensure_dirs()
    os.environ.update(child_env(settings))  # before Prefect is imported in this process
    # This console shows one line per event; the flow runs' own logs are in the Prefect UI.
    os.environ.update({"PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "WARNING", "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true"})
    stop = threading.Event()
    stop_like_ctrl_c()
    supervisor = Supervisor(settings, say)
    began = time.monotonic()
    try:
        supervisor.start()
        app = Sentinel(settings)
        ensure_champion(app, supervisor.env, say)
        evidently_workspace.ensure_project(settings.evidently_dir, drift.DESCRIPTORS)  # the Evidently UI is never empty
        supervisor.start_flows()
        say(f"all services ready in {time.monotonic() - began:.0f} s")
        titles = {"prefect": "Prefect UI", "mlflow": "MLflow UI", "evidently": "Evidently UI (drift dashboards)"}
        for child in supervisor.children:
            if child.name in titles:
                say(f"{titles[child.name]}: {child.url}")
        say(f"drift reports: {settings.reports_dir}")
        say(
            f"drop labeled CSV files (text,label) into {settings.incoming_dir}; `sentinel status` in another shell; Ctrl-C stops everything"
        )
        threading.Thread(target=supervisor.watch_children, daemon=True, name="children").start()
        threading.Thread(target=follow_training, args=(app, say, stop), daemon=True, name="training").start()
        if not settings.up.drift_worker:
            from sentinel import drift_worker

            drift_worker.work_in_process()
        Watcher(app, check=inline_check(app, say) if settings.up.check_inline else None, notify=notify).run(stop)
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        say("stopping …")
        supervisor.stop()
