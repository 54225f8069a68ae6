"""`sentinel up` for real: a Prefect server and an MLflow server on free loopback ports, the served
deployments, the watcher, real reviews dropped into the drop zone. The tests wait for the ledger to show
the outcome, then check it against Prefect and MLflow. They share one running project, in order."""

from __future__ import annotations

import http.server
import ipaddress
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

from deployments.watch import CHECKS_PER_RUN
from sentinel import demo, taking_in, up
from sentinel.context import Sentinel
from tests import browser, harness
from tests.harness import UpProcess, settled, wait_for

pytestmark = pytest.mark.slow


class Webhook:
    """A loopback HTTP endpoint that keeps what Prefect's notifications post to it."""

    def __init__(self) -> None:
        received = self.received = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (the http.server API)
                received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture(scope="module")
def webhook():
    hook = Webhook()
    yield hook
    hook.server.shutdown()


@pytest.fixture(scope="module")
def running(tmp_path_factory, imdb, webhook):
    home = tmp_path_factory.mktemp("up")
    reference = home / "reference.csv"
    imdb.head(3000).to_csv(reference, index=False)
    project = UpProcess(
        home,
        SENTINEL_UP__NOTIFY_WEBHOOK_URL=webhook.url,
        SENTINEL_REFERENCE_CSV=str(reference),
        SENTINEL_UP__RECONCILE_SECONDS="15",
        SENTINEL_UP__RETRAIN_QUIET_SECONDS="3",
        SENTINEL_UP__RETRAIN_MAX_WAIT_SECONDS="600",
    )
    project.start()
    yield project
    project.stop()
    assert project.process.returncode == 0, project.log()


def handed_out(rows: pd.DataFrame):
    """Rows no test has used yet, handed out in order, so every dropped file has new bytes."""
    cursor = {"at": 0}

    def take(n: int) -> pd.DataFrame:
        start = cursor["at"]
        cursor["at"] += n
        assert cursor["at"] <= len(rows), f"the tests ask for more than the {len(rows)} rows there are"
        return rows.iloc[start : start + n]

    return take


@pytest.fixture(scope="module")
def fresh_imdb(imdb):
    return handed_out(imdb.iloc[3000:].reset_index(drop=True))  # the first 3,000 trained the champion


@pytest.fixture(scope="module")
def fresh_rotten(rotten):
    return handed_out(rotten)


def incoming(running: UpProcess) -> Path:
    return running.settings.incoming_dir


def exactly_once(running: UpProcess, files: set[str]) -> None:
    """Each file became one batch, was checked once, and left the drop zone."""
    ledger = running.ledger()
    try:
        rows = [b for b in ledger.batches() if b.file_name in files]
        assert sorted(b.file_name for b in rows) == sorted(files), "a file was taken in twice or not at all"
        assert all(b.status == "accepted" for b in rows), [(b.file_name, b.status, b.reason) for b in rows if b.status != "accepted"]
        for row in rows:
            assert len(ledger.drift_checks(row.batch_id)) == 1, (
                f"{row.file_name} was checked {len(ledger.drift_checks(row.batch_id))} times"
            )
        assert not set(os.listdir(incoming(running))) & files
    finally:
        ledger.dispose()


def no_retrain_waiting(running: UpProcess) -> bool:
    ledger = running.ledger()
    try:
        return not ledger.unanswered_drift() and not ledger.batches_awaiting_drift_check()
    finally:
        ledger.dispose()


def test_status_reports_every_service_healthy(running):
    result = subprocess.run(
        [sys.executable, "-m", "sentinel.cli", "status", "--json"], env=os.environ | running.env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["healthy"] is True
    assert set(document["services"]) == {"prefect", "mlflow", "evidently", "flows", "watcher"}
    assert document["services"]["prefect"]["url"] == f"http://127.0.0.1:{running.env['SENTINEL_UP__PREFECT_PORT']}"
    assert all(service["healthy"] for service in document["services"].values())
    assert document["pending"] == {"files": 0, "drift_checks": 0, "unanswered_drift": 0}
    # the first champion was trained from the reference in the settings (later tests may promote others)
    app = Sentinel(running.settings)
    assert app.champion() is not None and app.ledger.model(app.settings.registered_model, "1").decision == "promoted"
    app.close()
    # the Evidently UI serves the project's workspace, whose project exists from the first champion on
    with urllib.request.urlopen(f"{document['services']['evidently']['url']}/api/projects", timeout=10) as response:
        assert [p["name"] for p in json.load(response)] == ["sentinel"]
    # MLflow's server runs in the process `up` started: no launcher beside it holding MLflow's imports
    server = running.service_pid("mlflow")
    assert "uvicorn" in Path(f"/proc/{server}/cmdline").read_text()
    assert not Path(f"/proc/{server}/task/{server}/children").read_text().split()
    # the servers listen on loopback only (up.host)
    for port in (running.settings.up.prefect_port, running.settings.up.mlflow_port, running.settings.up.evidently_port):
        assert listening_addresses(port) == {"127.0.0.1"}, port


@pytest.mark.parametrize("command", [["models", "--json"], ["show", "1", "--json"]])
def test_read_commands_ask_the_running_mlflow_server_without_importing_mlflow(running, command):
    """With `sentinel up` running, a read command in another shell (whose tracking URI is the project's
    SQLite store, which up's MLflow server serves) asks that server's REST API: the same answer as
    MLflow's client, without the seconds its import costs."""
    ran = subprocess.run(
        [sys.executable, "-c", harness.MODULES_PROBE, *command], env=os.environ | running.env, capture_output=True, text=True, timeout=60
    )
    assert ran.returncode == 0, ran.stderr
    assert "mlflow" not in ran.stderr.splitlines()[-1].split()
    printed = json.loads(ran.stdout)
    app = Sentinel(running.settings)  # the client, through the server
    champion = next(v for v in app.registry.versions() if v.version == "1")
    app.close()
    record = printed[0] if command[0] == "models" else printed
    # what cannot change while other tests retrain: the first version, its tags from registration
    assert record["version"] == "1" and record["tags"]["batches"] == champion.tags["sentinel.batches"]
    assert record["tags"]["model_sha256"] == champion.tags["sentinel.model_sha256"]


def listening_addresses(port: int) -> set[str]:
    """The addresses a TCP port listens on, from /proc/net (state 0A = LISTEN)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            address, hex_port = fields[1].split(":")
            if fields[3] == "0A" and int(hex_port, 16) == port:
                raw = bytes.fromhex(address)  # each 32-bit word in host (little-endian) byte order
                found.add(str(ipaddress.ip_address(b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4)))))
    return found


@pytest.fixture(scope="module")
def first_retrain(running, fresh_imdb, fresh_rotten) -> dict:
    """The project's first drift: a stable IMDB file and two Rotten Tomatoes files, their verdicts, and
    the retrain the drift event started, as recorded right after it. Every test that drops files asks for
    it, so it comes first whichever test runs first (later drops are measured against what it learned)."""
    files = {"stable.csv", "rotten-a.csv", "rotten-b.csv"}
    ledger = running.ledger()
    runs_before = len(ledger.training_runs())
    demo.drop(fresh_imdb(1000), incoming(running), "stable.csv")
    demo.drop(fresh_rotten(1500), incoming(running), "rotten-a.csv")
    demo.drop(fresh_rotten(1500), incoming(running), "rotten-b.csv")
    wait_for(lambda: settled(ledger, files), 120, "the three verdicts")
    verdicts = {b.file_name: b.drift_status for b in ledger.batches() if b.file_name in files}
    wait_for(lambda: no_retrain_waiting(running), 240, "the retrain")
    runs = ledger.training_runs()[runs_before:]
    learned = {ledger.batch(b).file_name for b in runs[-1].batch_ids}
    ledger.dispose()
    from mlflow import MlflowClient

    version = MlflowClient(running.settings.mlflow_tracking_uri).get_model_version(
        running.settings.registered_model, runs[-1].model_version
    )
    wait_for(lambda: any(r["state_type"] == "COMPLETED" for r in running.flow_runs("retrain")), 60, "the retrain flow run to complete")
    return {"files": files, "verdicts": verdicts, "runs": runs, "learned": learned, "tags": version.tags}


def test_dropped_files_get_verdicts_and_drift_retrains(running, first_retrain):
    files = first_retrain["files"]
    assert first_retrain["verdicts"] == {"stable.csv": "clear", "rotten-a.csv": "detected", "rotten-b.csv": "detected"}
    # the drift event started the retrain deployment, which learned all three batches in one run
    runs = first_retrain["runs"]
    assert len(runs) == 1 and first_retrain["learned"] == files
    # the gate's answer depends on the data (here the reference slice may lose a little); it is recorded
    # in the registry either way
    assert first_retrain["tags"]["sentinel.decision"] == runs[-1].decision in ("promoted", "challenger", "rejected")

    # the watcher's events reached the Prefect server, each with its batch as the resource
    accepted = running.prefect("/events/filter", {"filter": {"event": {"name": ["sentinel.batch.accepted"]}}, "limit": 50})["events"]
    assert {e["payload"]["file"] for e in accepted} >= files
    assert all(e["resource"]["prefect.resource.id"].startswith("sentinel.batch.") for e in accepted)
    exactly_once(running, files)
    # each drift check added its snapshot to the workspace the Evidently UI shows
    from evidently.ui.workspace import Workspace

    workspace = Workspace(str(running.settings.evidently_dir))
    [project] = workspace.search_project("sentinel")
    assert len(workspace.list_runs(project.id)) >= len(files)


def test_flow_runs_show_the_loop_as_named_tasks_and_each_verdict_and_decision_as_an_artifact(running, first_retrain):
    [run] = first_retrain["runs"]

    # the retrain deployment's run, or the reconcile run that found the drift first: either publishes it
    def published() -> list[dict]:
        return [a for a in artifacts(running, "retrain-decision") if a["data"].startswith(f"### {run.run_name}: ")]

    wait_for(published, 60, "the decision's artifact")
    [decision] = published()
    tasks = running.prefect("/task_runs/filter", {"flow_runs": {"id": {"any_": [decision["flow_run_id"]]}}, "limit": 50})
    names = [t["name"] for t in sorted(tasks, key=lambda t: t["start_time"] or "")]
    assert all(t["state_type"] == "COMPLETED" for t in tasks), tasks
    expected = ["let the burst settle", "assemble the training rows", f"fit {run.run_name}", "judge against champion v1"]
    assert [n for n in names if n in expected] == expected
    assert f"register {run.run_name} ({run.decision})" in names
    stage = {"promoted": f"promote v{run.model_version} to champion", "challenger": f"hold v{run.model_version} as challenger"}
    assert run.decision == "rejected" or stage[run.decision] in names

    mlflow_url = f"http://127.0.0.1:{running.settings.up.mlflow_port}"
    assert f"### {run.run_name}: {run.decision}" in decision["data"]
    assert f"({mlflow_url}/#/models/{running.settings.registered_model}/versions/{run.model_version})" in decision["data"]
    assert f"({mlflow_url}/#/runs/{run.mlflow_run_id})" in decision["data"]
    assert "| shifted | superiority |" in decision["data"]

    # the watcher's drift checks ran as drift-check flow runs (one run checks up to `CHECKS_PER_RUN` waiting batches),
    # each batch with its check as a task of that run and its own verdict
    verdicts = {a["data"].split("\n")[0]: a for a in artifacts(running, "drift-verdict")}
    rotten = next(a for title, a in verdicts.items() if "`rotten-a.csv`" in title)
    assert "**drift: a retrain is due**" in rotten["data"] and "| text |" in rotten["data"]
    check_tasks = running.prefect("/task_runs/filter", {"flow_runs": {"id": {"any_": [rotten["flow_run_id"]]}}})
    names = {t["name"] for t in check_tasks}
    assert "check drift of rotten-a.csv" in names and len(names) == len(check_tasks) <= CHECKS_PER_RUN, names
    assert all(n.startswith("check drift of ") for n in names), names


def artifacts(running, key: str) -> list[dict]:
    return running.prefect("/artifacts/filter", {"artifacts": {"key": {"any_": [key]}}, "limit": 200})


def test_the_three_uis_show_the_loop_in_a_real_browser(running, first_retrain, tmp_path):
    """What a person sees after the first retrain, in headless Chromium: the MLflow page of the version it
    registered (decision in the description, tags, alias), the Prefect page of its decision artifact (the
    gate's table) and of its flow run (the task graph), and the Evidently dashboard served by `up` (its
    panels, plotted). A screenshot of each is kept under test-artifacts/."""
    [run] = first_retrain["runs"]
    settings, profile = running.settings, tmp_path / "profile"

    mlflow_page = f"http://127.0.0.1:{settings.up.mlflow_port}/#/models/{settings.registered_model}/versions/{run.model_version}"
    shown = browser.open_page(mlflow_page, profile, wait_ms=15000)
    assert f"Version {run.model_version}" in shown.dom and "sentinel.decision" in shown.dom
    assert f"<strong>{run.decision}</strong>" in shown.dom and "Gate (accuracy" in shown.dom  # the description, rendered
    assert run.decision != "promoted" or "champion" in shown.dom  # the alias
    browser.screenshot(mlflow_page, profile, "mlflow-model-version", wait_ms=15000)

    prefect_ui = settings.prefect_api_url.removesuffix("/api")
    decision = wait_for(
        lambda: next((a for a in artifacts(running, "retrain-decision") if a["data"].startswith(f"### {run.run_name}: ")), None),
        60,
        "the decision's artifact",
    )
    artifact_page = f"{prefect_ui}/artifacts/artifact/{decision['id']}"
    shown = browser.open_page(artifact_page, profile, wait_ms=15000)
    assert "<table" in shown.dom and "superiority" in shown.dom and "non-inferiority" in shown.dom
    browser.screenshot(artifact_page, profile, "prefect-decision-artifact", wait_ms=15000)
    flow_run_page = f"{prefect_ui}/runs/flow-run/{decision['flow_run_id']}"
    [flow_run] = running.prefect("/flow_runs/filter", {"flow_runs": {"id": {"any_": [decision["flow_run_id"]]}}})
    shown = browser.open_page(flow_run_page, profile, wait_ms=15000)  # its task graph is drawn on a canvas
    assert flow_run["name"] in shown.dom and "Task Runs" in shown.dom and "Completed" in shown.dom
    browser.screenshot(flow_run_page, profile, "prefect-flow-run", wait_ms=15000)

    evidently_ui = f"http://127.0.0.1:{settings.up.evidently_port}"
    with urllib.request.urlopen(f"{evidently_ui}/api/projects", timeout=10) as response:
        [project] = json.load(response)
    dashboard = f"{evidently_ui}/projects/{project['id']}"
    shown = browser.open_page(dashboard, profile, wait_ms=20000)
    for title in ("Text drift (domain classifier ROC AUC)", "Label drift (Jensen-Shannon)", "Descriptor drift (normed Wasserstein)"):
        assert title in shown.dom
    assert shown.dom.count(">Timestamps<") >= 3  # the drift panels are plotted, each with its time axis
    browser.screenshot(dashboard, profile, "evidently-dashboard", wait_ms=20000)


def test_a_quarantined_file_and_a_decision_are_notified_through_prefect_automations(running, webhook, first_retrain):
    (incoming(running) / "wrong-columns.csv").write_text("title,score\ngreat,5\n" * 60)  # no column holds a review

    def notified() -> bool:
        return any("wrong-columns.csv" in m["subject"] for m in webhook.received)

    wait_for(notified, 120, "the quarantine notification")
    [message] = [m for m in webhook.received if "wrong-columns.csv" in m["subject"]]
    assert "quarantined" in message["subject"] and "text" in message["text"]  # the reason names the missing column
    # the first retrain ended in a decision; promotions and rejections are notified too (after the alias
    # move, which follows the ledger's record of the decision by a few seconds)
    gate_said = first_retrain["runs"][-1].decision

    def decisions() -> list:
        return [m for m in webhook.received if "champion" in m["subject"] or "rejected" in m["subject"]]

    if gate_said in ("promoted", "rejected"):
        wait_for(decisions, 120, f"the notification of the {gate_said} version")
    else:
        time.sleep(5.0)
        assert decisions() == [], (gate_said, webhook.received)

    # a failed run of one of Sentinel's deployments: the event Prefect emits, with the run's tag related
    from prefect.events import emit_event
    from prefect.events.worker import EventsWorker
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: running.settings.prefect_api_url}):
        emit_event(
            "prefect.flow-run.Failed",
            resource={
                "prefect.resource.id": "prefect.flow-run.00000000-0000-0000-0000-000000000001",
                "prefect.resource.name": "tired-otter",
            },
            related=[{"prefect.resource.id": "prefect.tag.sentinel", "prefect.resource.role": "tag"}],
            payload={"validated_state": {"type": "FAILED", "message": "MLflow server unreachable"}},
        )
        EventsWorker.drain_all()
    wait_for(lambda: any("tired-otter" in m["subject"] for m in webhook.received), 120, "the failed-run notification")
    [failed] = [m for m in webhook.received if "tired-otter" in m["subject"]]
    assert "MLflow server unreachable" in failed["text"]


def test_a_batch_left_to_the_drift_check_deployment_is_checked_by_it(running, fresh_imdb, tmp_path, first_retrain):
    """A taker that does not check drift itself (another host, `check_inline = false`) announces the
    batch; the drift-check deployment's event trigger answers it."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    path = tmp_path / "elsewhere.csv"
    fresh_imdb(500).to_csv(path, index=False)
    app = Sentinel(running.settings)
    with temporary_settings(updates={PREFECT_API_URL: running.settings.prefect_api_url}):
        [outcome] = taking_in.take_in(app, [path], checks_drift=False)
        from prefect.events.worker import EventsWorker

        EventsWorker.drain_all()  # the event is sent before this test process moves on
    assert outcome.status == "accepted"

    # the event started a drift-check run for this batch; whichever of it and the watcher's periodic
    # sweep came first measured the batch, once
    def triggered_run_completed() -> bool:
        return any(
            r["parameters"].get("batch_id") == outcome.batch_id and r["state_type"] == "COMPLETED" for r in running.flow_runs("drift-check")
        )

    wait_for(triggered_run_completed, 120, "the triggered drift-check run")
    # a run that found the drift lock held leaves the batch to its holder, which checks every pending one
    wait_for(lambda: app.ledger.batch(outcome.batch_id).drift_status != "pending", 60, "the batch's verdict")
    assert len(app.ledger.drift_checks(outcome.batch_id)) == 1
    app.close()


def settled_retrains(running: UpProcess) -> bool:
    """No drift waits for a retrain and no retrain run is still going."""
    active = [r for r in running.flow_runs("retrain") if r["state_type"] in ("SCHEDULED", "PENDING", "RUNNING")]
    return no_retrain_waiting(running) and not active


def test_a_burst_of_100_files_is_taken_in_once_and_retrained_at_most_twice(running, fresh_imdb, fresh_rotten, first_retrain):
    wait_for(lambda: settled_retrains(running), 300, "the earlier tests' retrains")  # count only the burst's
    before = len(running.ledger().training_runs())
    frames = [(f"burst-imdb-{i:03d}.csv", fresh_imdb(150)) for i in range(50)] + [
        (f"burst-rotten-{i:03d}.csv", fresh_rotten(60)) for i in range(50)
    ]
    staging = running.home / "staging"
    staging.mkdir()
    for name, frame in frames:
        frame.to_csv(staging / name, index=False)
    for name, _ in frames:  # all at once: a rename per file
        (staging / name).rename(incoming(running) / name)
    files = {name for name, _ in frames}
    ledger = running.ledger()
    wait_for(lambda: settled(ledger, files), 400, "100 verdicts")
    wait_for(lambda: no_retrain_waiting(running), 400, "the burst's retrains")
    exactly_once(running, files)
    runs = ledger.training_runs()[before:]
    # At most two retrains. Whether there is one depends on the champion of the earlier tests: after it
    # learned Rotten Tomatoes, the burst's drift costs it no accuracy, and a refresh waits for `reconcile`.
    assert len(runs) <= 2, [r.run_name for r in runs]
    for earlier, later in zip(runs, runs[1:]):
        assert earlier.finished_at <= later.started_at, "two retrains overlapped"
    ledger.dispose()


def test_files_arriving_while_the_watcher_is_killed_are_each_taken_in_once(running, fresh_imdb, first_retrain):
    files = [f"restart-{i:02d}.csv" for i in range(12)]

    def producer():
        for name in files:
            demo.drop(fresh_imdb(100), incoming(running), name)
            time.sleep(0.5)

    thread = threading.Thread(target=producer)
    thread.start()
    time.sleep(2.0)
    running.stop(signal.SIGKILL)  # no clean shutdown: the children are left running, and reaped by the next start
    thread.join()
    running.start()
    ledger = running.ledger()
    wait_for(lambda: settled(ledger, set(files)), 120, "the files dropped around the restart")
    ledger.dispose()
    exactly_once(running, set(files))


@pytest.mark.parametrize("server", ["prefect", "mlflow"])
def test_files_dropped_while_a_server_is_down_are_each_finished(running, fresh_imdb, fresh_rotten, server, first_retrain):
    """Prefect down: the watcher checks drift without it, and the retrain the lost event should have
    started comes from the restarted server's reconcile schedule. MLflow down: intake needs no MLflow;
    each drift check logs to MLflow, so it waits (the client retries) until the supervisor has the
    server back. Either way every file is finished, once. (The Evidently UI is served from the
    supervisor's process; its restart is tested in tests/unit/test_evidently_ui.py.)"""
    pid = running.service_pid(server)
    os.killpg(pid, signal.SIGKILL)
    stable, shifted = f"{server}-down-stable.csv", f"{server}-down-rotten.csv"
    demo.drop(fresh_imdb(500), incoming(running), stable)
    demo.drop(fresh_rotten(1000), incoming(running), shifted)
    ledger = running.ledger()
    wait_for(lambda: settled(ledger, {stable, shifted}), 240, "the verdicts")
    wait_for(lambda: running.service_pid(server) != pid, 60, f"the supervisor to restart the {server} server")
    wait_for(lambda: no_retrain_waiting(running), 300, "the retrain after the outage")
    exactly_once(running, {stable, shifted})
    rotten = next(b for b in ledger.batches() if b.file_name == shifted)
    # By now the champion has learned Rotten Tomatoes: whether this batch's drift costs it accuracy (and so
    # starts a retrain) depends on the earlier tests. A retrain that was due was done.
    assert rotten.drift_status in ("detected", "harmless")
    assert rotten.drift_status != "detected" or rotten.trained_in is not None
    ledger.dispose()
    # and the restarted server answers again, so whatever test follows finds every service healthy
    wait_for(lambda: up.status(running.settings)["healthy"], 120, f"the {server} server to answer again", poll=0.5)


def test_prefect_yaml_deploys_the_same_four_deployments_onto_a_work_pool(running):
    """What a Prefect user runs. It re-points the served deployments at a work pool, so `sentinel up` is
    restarted afterwards: serving them again points them back at its own process, whatever test follows."""
    try:
        repo = Path(__file__).resolve().parents[2]
        env = os.environ | running.env | {"PREFECT_API_URL": running.settings.prefect_api_url, "SENTINEL_REPO": str(repo)}

        def prefect(*args: str, timeout: float) -> subprocess.CompletedProcess:
            command = [str(Path(sys.executable).parent / "prefect"), *args]
            return subprocess.run(command, env=env, cwd=repo, capture_output=True, text=True, timeout=timeout)

        created = prefect("work-pool", "create", "sentinel", "--type", "process", timeout=120)
        assert created.returncode == 0, created.stdout + created.stderr
        deployed = prefect("--no-prompt", "deploy", "--prefect-file", "deployments/prefect.yaml", "--all", timeout=300)
        assert deployed.returncode == 0, deployed.stdout[-3000:] + deployed.stderr[-3000:]
        for name in ("drift-check/drift-check", "retrain/retrain", "drift-report/drift-report", "reconcile/reconcile"):
            with urllib.request.urlopen(f"{running.settings.prefect_api_url}/deployments/name/{name}", timeout=10) as response:
                deployment = json.load(response)
            assert deployment["work_pool_name"] == "sentinel", name
        automations = running.prefect("/automations/filter", {})
        triggers = {a["name"]: a["trigger"] for a in automations}
        batch_trigger = next(t for n, t in triggers.items() if "batch accepted" in n or t.get("expect") == ["sentinel.batch.accepted"])
        assert batch_trigger["match"]["sentinel.check"] == "deployment"
    finally:
        running.stop()
        running.start()  # healthy only once every deployment is served and ready again
