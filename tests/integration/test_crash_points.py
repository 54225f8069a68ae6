"""kill -9 at every point between the writes that cannot share a transaction (files, ledger, MLflow),
then `sentinel doctor --repair` and a restart: every dropped file is processed exactly once, none is
lost, no half-registered version holds an alias, and the ledger agrees with the files and the registry.

`sentinel process` runs the same intake, drift-check and retrain code as the watcher and the flows of
`sentinel up`; SENTINEL_FAILPOINT makes it SIGKILL itself at the named point."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sentinel import demo, failpoints
from sentinel.context import Sentinel
from sentinel.ledger import CHECKED
from sentinel.settings import Settings

pytestmark = pytest.mark.slow
SENTINEL = [sys.executable, "-m", "sentinel.cli"]
FAST = {
    "SENTINEL_INTAKE__SETTLE_SECONDS": "0.05",
    "SENTINEL_INTAKE__MIN_ROWS": "20",
    "SENTINEL_DRIFT__CALIBRATION_DRAWS": "4",
    "SENTINEL_DRIFT__REFERENCE_ROWS": "1000",
    # These tests are about crashes, not the gate: a generous bound makes the promotion they walk through
    # certain (a small IMDB champion loses a little on IMDB when it learns Rotten Tomatoes).
    "SENTINEL_GATE__NONINFERIORITY_BOUND": "0.2",
    "SENTINEL_TUNE__AT_BOOTSTRAP": "false",  # the model search has its own tests
}


# What `sentinel doctor` must find after a kill at each point (nothing where the restart alone mends it).
DISAGREEMENT = {
    "intake.stored": {"every stored batch is in the ledger"},
    "intake.recorded": set(),  # the next intake sees the same name and bytes, already recorded, and finishes the move
    "quarantine.moved": {"every quarantined file is in the ledger"},
    "drift.logged": set(),  # the batch is still pending and is checked again; MLflow holds one extra run
    "retrain.registered": {"every registered version is in the ledger"},
    "retrain.recorded": {"every version the gate promoted was made champion"},
    "alias.moved": {"MLflow's aliases agree with the ledger's alias history"},
}


def run(home: Path, *args: str, failpoint: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "SENTINEL_FAILPOINT"} | FAST | {"SENTINEL_HOME": str(home)}
    if failpoint:
        env["SENTINEL_FAILPOINT"] = failpoint
    return subprocess.run([*SENTINEL, *args], env=env, capture_output=True, text=True, timeout=600)


def doctor(home: Path, *flags: str) -> dict:
    result = run(home, "doctor", "--json", *flags)
    found = json.loads(result.stdout)
    assert (result.returncode == 0) == found["ok"], result.stderr
    return found


@pytest.fixture(scope="module")
def bootstrapped(tmp_path_factory, imdb) -> tuple[Path, Path]:
    """One bootstrapped project, kept as a snapshot. Every test starts from a copy of it at the same path
    (the ledger and MLflow record absolute paths), so the champion is trained once, not once per point."""
    base = tmp_path_factory.mktemp("crash")
    home, snapshot = base / "home", base / "snapshot"
    home.mkdir()
    reference = home / "reference.csv"
    imdb.iloc[:1500].to_csv(reference, index=False)
    assert run(home, "bootstrap", "--reference", str(reference)).returncode == 0
    shutil.copytree(home, snapshot, symlinks=True)
    return home, snapshot


@pytest.fixture
def home(bootstrapped) -> Path:
    home, snapshot = bootstrapped
    shutil.rmtree(home)
    shutil.copytree(snapshot, home, symlinks=True)
    return home


@pytest.mark.parametrize("point", sorted(failpoints.POINTS))
def test_a_kill_at_any_point_loses_nothing_and_doctor_agrees_after_the_restart(point, home, imdb, rotten):
    incoming = home / "data" / "incoming"
    demo.drop(imdb.iloc[1500:1900], incoming, "stable.csv")
    demo.drop(rotten.iloc[:3500], incoming, "rotten.csv")
    (incoming / "broken.csv").write_text("text;label\nsemicolons;1\n")

    killed = run(home, "process", failpoint=point)
    assert killed.returncode == -9, f"{point} was never reached:\n{killed.stdout}\n{killed.stderr}"
    found = doctor(home)
    assert {c["name"] for c in found["checks"] if not c["ok"]} == DISAGREEMENT[point], found
    repaired = doctor(home, "--repair")
    assert repaired["ok"], repaired
    restarted = run(home, "process")
    assert restarted.returncode == 0, restarted.stderr
    assert doctor(home)["ok"]

    app = Sentinel(Settings(home=home))
    try:
        assert [p.name for p in incoming.iterdir() if not p.name.startswith(".")] == []
        batches = app.ledger.batches()
        accepted = sorted(b.file_name for b in batches if b.status == "accepted" and not b.batch_id.startswith("ref-"))
        assert accepted == ["rotten.csv", "stable.csv"]  # each exactly once
        assert [b.file_name for b in batches if b.status == "quarantined"] == ["broken.csv"]
        assert (app.settings.quarantine_dir / "broken.csv").read_text() == "text;label\nsemicolons;1\n"
        for batch in (b for b in batches if b.status == "accepted" and not b.batch_id.startswith("ref-")):
            assert batch.drift_status in CHECKED and len(app.ledger.drift_checks(batch.batch_id)) == 1
            assert Path(batch.stored_path).is_file() and Path(batch.stored_path).with_suffix(".csv").is_file()
        rotten_batch = next(b for b in batches if b.file_name == "rotten.csv")
        assert rotten_batch.drift_status == "detected" and rotten_batch.trained_in is not None
        learned = [run.batch_ids.count(rotten_batch.batch_id) for run in app.ledger.training_runs()]
        assert sum(learned) == 1  # learned by exactly one recorded retrain
        assert app.ledger.training_run(rotten_batch.trained_in).decision == "promoted"  # the alias points were passed

        # The registry is read through the CLI: this process's MLflow client caches its store per URI,
        # and every test's project has the same path (see `bootstrapped`).
        versions = {m["version"]: m for m in json.loads(run(home, "models", "--json").stdout)}
        champion = next(v for v, m in versions.items() if "champion" in m["aliases"])
        known = {m.version: m for m in app.ledger.models(app.settings.registered_model)}
        assert champion in known and Path(known[champion].reference_path).is_file()
        for version, info in versions.items():
            if version not in known:  # registered by the killed run: retired, holds no alias
                assert info["tags"]["role"] == "incomplete" and not info["aliases"]
    finally:
        app.close()


def test_every_failpoint_has_an_expectation():
    assert set(DISAGREEMENT) == set(failpoints.POINTS)
