"""The watcher and the drift report without servers: a real project (SQLite ledger and MLflow), a real
drop zone watched by watchdog, real reviews."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from sentinel import demo, drift_checks, drift_report, loop, retraining, up
from sentinel.context import Sentinel
from sentinel.ledger import CHECKED
from sentinel.settings import Settings
from sentinel.watcher import Watcher
from tests.conftest import make_settings
from tests.harness import settled, wait_for

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def project(tmp_path_factory, imdb):
    home = tmp_path_factory.mktemp("watched")
    settings = make_settings(home, intake={"settle_seconds": 0.2, "min_rows": 20}, drift={"reference_rows": 1500, "calibration_draws": 4})
    app = Sentinel(settings)
    reference = home / "reference.csv"
    imdb.head(2000).to_csv(reference, index=False)
    retraining.bootstrap(app, reference)
    yield app
    app.close()


@pytest.fixture
def watching(project):
    heard: list[tuple[str, object]] = []
    stop = threading.Event()
    watcher = Watcher(
        project,
        check=lambda batch_id: drift_checks.check_pending(project, limit=1),
        notify=lambda kind, item: heard.append((kind, item)),
        rescan_seconds=1.0,
    )
    thread = threading.Thread(target=watcher.run, args=(stop,), daemon=True)
    thread.start()
    assert watcher.watching.wait(10)
    yield heard
    stop.set()
    watcher.wake.set()
    thread.join(timeout=30)
    assert not thread.is_alive()


def test_the_watcher_takes_in_and_checks_a_dropped_file_and_survives_a_broken_one(project, watching, imdb):
    incoming = project.settings.incoming_dir
    (incoming / "broken.csv").write_text("text;label\ngreat;1\n")
    demo.drop(imdb.iloc[2000:2300], incoming, "good.csv")
    wait_for(lambda: any(kind == "drift" for kind, _ in watching), 60, "a drift verdict")
    outcomes = {item.file: item.status for kind, item in watching if kind == "intake"}
    assert outcomes == {"broken.csv": "quarantined", "good.csv": "accepted"}
    assert (project.settings.quarantine_dir / "broken.csv.reason.json").exists()
    [check] = [item for kind, item in watching if kind == "drift"]
    assert project.ledger.batch(check.batch_id).file_name == "good.csv"


def test_a_file_still_being_written_is_read_only_once_complete(project, watching, imdb):
    incoming = project.settings.incoming_dir
    rows = imdb.iloc[2300:2500].to_csv(index=False).encode()
    with open(incoming / "slow.csv", "wb") as handle:  # a producer writing in pieces, straight into the drop zone
        for start in range(0, len(rows), len(rows) // 4 + 1):
            handle.write(rows[start : start + len(rows) // 4 + 1])
            handle.flush()
            time.sleep(0.4)
    wait_for(
        lambda: any(kind == "intake" and item.file == "slow.csv" and item.status != "waiting" for kind, item in watching), 60, "slow.csv"
    )
    [batch] = [b for b in project.ledger.batches() if b.file_name == "slow.csv"]
    assert batch.status == "accepted" and batch.rows == 200


def test_the_watcher_survives_the_whole_hostile_corpus_and_odd_entries(project, watching, imdb, tmp_path):
    """Every corpus file, a symlink out of the drop zone, a directory and a FIFO arrive at once with one
    good batch last: each bad entry is set aside with its reason, the good one is checked, nothing is
    followed, and the watcher keeps running."""
    incoming, quarantine = project.settings.incoming_dir, project.settings.quarantine_dir
    corpus = Path(__file__).parents[1] / "corpus" / "hostile"
    secret = tmp_path / "outside.csv"
    secret.write_text("text,label\n" + "outside the drop zone,1\n" * 60)
    expected = json.loads((corpus.parent / "hostile.json").read_text())
    names, genuine = set(), set()  # genuine: text that begins like a formula, variants intake maps
    for source in sorted(corpus.iterdir()):
        shutil.copyfile(source, incoming / f"corpus-{source.name}")
        (genuine if expected[source.name]["expect"] == "accepted" else names).add(f"corpus-{source.name}")
    (incoming / "link-out.csv").symlink_to(secret)
    (incoming / "a-folder").mkdir()
    os.mkfifo(incoming / "a-pipe.csv")
    names |= {"link-out.csv", "a-folder", "a-pipe.csv"}
    time.sleep(0.3)
    demo.drop(imdb.iloc[2500:2800], incoming, "after-the-corpus.csv")

    def settled():
        seen = {item.file: item.status for kind, item in watching if kind == "intake" and item.status != "waiting"}
        return seen if names | genuine | {"after-the-corpus.csv"} <= set(seen) else None

    seen = wait_for(settled, 120, "every entry taken in")
    assert {name: seen[name] for name in names} == dict.fromkeys(names, "quarantined")
    assert {name: seen[name] for name in genuine} == dict.fromkeys(genuine, "accepted")
    assert seen["after-the-corpus.csv"] == "accepted"
    [good] = [b for b in project.ledger.batches() if b.file_name == "after-the-corpus.csv"]
    wait_for(lambda: project.ledger.drift_checks(good.batch_id), 60, "the good batch's drift check")
    assert not [p for p in incoming.iterdir() if not p.name.startswith(".")]
    for name in names:
        assert (quarantine / name).exists() or (quarantine / name).is_symlink() or (quarantine / name).is_fifo()
        assert (quarantine / f"{name}.reason.json").exists()
    assert secret.read_text().count("\n") == 61 and (quarantine / "link-out.csv").is_symlink()


def test_two_watchers_on_one_drop_zone_take_each_file_once(project, imdb):
    """Two `sentinel watch` processes on the same drop zone and ledger (two hosts sharing a folder, or a
    watcher started twice): the intake and drift locks make every file one batch with one drift check.
    Both stop cleanly: the first was started with SIGINT ignored, as a shell leaves a job it starts in
    the background, and gets Ctrl-C's SIGINT; the second gets SIGTERM, as a service manager sends."""
    # PYTHONFAULTHANDLER: a watcher that does not stop is aborted and prints where it hung.
    env = os.environ | {"SENTINEL_HOME": str(project.settings.home), "SENTINEL_INTAKE__SETTLE_SECONDS": "0.2", "PYTHONFAULTHANDLER": "1"}
    env.pop("SENTINEL_PREFECT_API_URL", None)
    dispositions = [signal.SIG_IGN, signal.SIG_DFL]
    watchers = [
        subprocess.Popen(
            [sys.executable, "-m", "sentinel.cli", "watch"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            preexec_fn=lambda disposition=disposition: signal.signal(signal.SIGINT, disposition),
        )
        for disposition in dispositions
    ]
    try:
        for watcher in watchers:
            assert "watching" in watcher.stdout.readline()
        time.sleep(1.0)  # the observers are scheduled right after that line
        files = {f"twice-watched-{i:02d}.csv" for i in range(20)}
        for i, name in enumerate(sorted(files)):
            demo.drop(imdb.iloc[3000 + i * 60 : 3060 + i * 60], project.settings.incoming_dir, name)
        wait_for(lambda: settled(project.ledger, files), 180, "both watchers to finish")
        rows = [b for b in project.ledger.batches() if b.file_name in files]
        assert sorted(b.file_name for b in rows) == sorted(files) and all(b.status == "accepted" for b in rows)
        assert all(len(project.ledger.drift_checks(b.batch_id)) == 1 for b in rows)
        assert all(w.poll() is None for w in watchers)  # both still running
    finally:
        for watcher, stop_signal in zip(watchers, (signal.SIGINT, signal.SIGTERM)):
            watcher.send_signal(stop_signal)
        outputs = stopped_outputs(watchers, timeout=60)
    assert [w.returncode for w in watchers] == [0, 0], outputs
    # each file was reported accepted by exactly one of them
    for name in files:
        assert sum(f"accepted {name}" in out for out in outputs) == 1, name


def stopped_outputs(processes: list[subprocess.Popen], timeout: float) -> list[str]:
    """What each process told to stop printed. One still running after `timeout` seconds is
    aborted (SIGABRT: faulthandler prints its threads' stacks), and once every process is reaped the test
    fails with those stacks."""
    outputs, stacks = [], []
    for process in processes:
        try:
            outputs.append(process.communicate(timeout=timeout)[0])
            continue
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGABRT)
        try:
            output = process.communicate(timeout=30)[0]
        except subprocess.TimeoutExpired:
            process.kill()
            output = process.communicate()[0]
        start = output.find("Fatal Python error")  # the dump, before its list of extension modules
        stacks.append(output[start:][:8000] if start >= 0 else output[-8000:])
        outputs.append(output)
    if stacks:
        pytest.fail(f"{len(stacks)} watcher(s) did not stop within {timeout:.0f} s of Ctrl-C; their threads:\n" + "\n".join(stacks))
    return outputs


def test_the_drift_report_covers_the_batches_since_the_last_one(project, rotten):
    demo.drop(rotten.iloc[:300], project.settings.incoming_dir, "rotten.csv")
    loop.process(project)
    # a review that tries to close Evidently's <script> element
    hostile = rotten.iloc[300:400].assign(text=lambda f: f["text"] + " </script><script>alert(1)</script>")
    demo.drop(hostile, project.settings.incoming_dir, "hostile.csv")
    loop.process(project)

    made = drift_report.make_report(project)
    assert made["batches"] == len([b for b in project.ledger.batches(status="accepted") if b.drift_status in CHECKED])
    html = open(made["html"], encoding="utf-8").read()
    assert "<script>alert(1)" not in html  # Evidently embeds example texts when it shows them; never as markup
    assert drift_report.make_report(project) is None  # nothing new since

    from evidently.ui.workspace import Workspace

    workspace = Workspace(str(project.settings.evidently_dir))
    [evidently_project] = workspace.search_project(drift_report.PROJECT)
    # the report's snapshot, beside one of each drift check (two here, maybe more from earlier tests)
    snapshots = {str(i) for i in workspace.list_runs(evidently_project.id)}
    assert made["snapshot_id"] in snapshots and len(snapshots) >= 3
    titles = [panel.title for panel in workspace.get_dashboard(evidently_project.id).panels]
    assert any("Text drift" in t for t in titles) and any("Label drift" in t for t in titles) and any("quality" in t for t in titles)

    from mlflow import MlflowClient

    run = MlflowClient(project.settings.mlflow_tracking_uri).get_run(made["mlflow_run_id"])
    assert run.data.tags["sentinel.kind"] == "scheduled-report"
    assert {"text", "label", "accuracy", "f1"} <= set(run.data.metrics)


def test_every_setting_reaches_the_flow_runs_through_the_environment(tmp_path, monkeypatch):
    settings = up.running_settings(make_settings(tmp_path, gate={"margin": 0.03}, up={"prefect_port": 4999, "report_cron": "*/5 * * * *"}))
    for key in [k for k in os.environ if k.startswith("SENTINEL_")]:
        monkeypatch.delenv(key)
    for key, value in up.child_env(settings).items():
        monkeypatch.setenv(key, value)
    assert Settings() == settings


def test_status_without_sentinel_up_is_unhealthy_and_exits_1(tmp_path):
    env = os.environ | {"SENTINEL_HOME": str(tmp_path), "SENTINEL_UP__PREFECT_PORT": "9", "SENTINEL_UP__MLFLOW_PORT": "9"}
    result = subprocess.run([sys.executable, "-m", "sentinel.cli", "status", "--json"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    document = json.loads(result.stdout)
    assert document["healthy"] is False and not any(s["healthy"] for s in document["services"].values())
