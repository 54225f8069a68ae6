"""What an operator does, through the `sentinel` command, on a real ledger and a real MLflow registry:
read versions, lineage and alias history; promote, reject, roll back, review; requeue a fixed file.
Every refusal is one line and exit code 1; every --json document is parsed and checked."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sentinel import demo, drift, drift_reference, loop, promotion, read_models, references, retrain_due, retraining
from sentinel.context import Sentinel
from tests import harness
from tests.conftest import make_settings

pytestmark = pytest.mark.slow


# These tests are about the operator's commands, not drift statistics: a smaller reference and fewer
# calibration draws make every champion cheaper to build, in the CLI and in-process alike.
SMALL_DRIFT = {"reference_rows": 1000, "calibration_draws": 4}
SMALL_DRIFT_ENV = {f"SENTINEL_DRIFT__{key.upper()}": str(value) for key, value in SMALL_DRIFT.items()}


def sentinel(home: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess:
    env = os.environ | {"SENTINEL_HOME": str(home), "SENTINEL_INTAKE__SETTLE_SECONDS": "0.05", "COLUMNS": "200"} | SMALL_DRIFT_ENV
    env["SENTINEL_TUNE__AT_BOOTSTRAP"] = "false"  # these tests are about the operator's commands; the search has its own
    result = subprocess.run([sys.executable, "-m", "sentinel.cli", *args], env=env, capture_output=True, text=True, timeout=600)
    if ok and result.returncode != 0:
        raise AssertionError(f"sentinel {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def refused(home: Path, *args: str) -> str:
    result = sentinel(home, *args, ok=False)
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    return lines[0]


def as_json(home: Path, *args: str):
    return json.loads(sentinel(home, *args, "--json").stdout)


@pytest.fixture(scope="module")
def home(tmp_path_factory, imdb, rotten) -> Path:
    """Version 1 trained on IMDB; version 2 retrained after Rotten Tomatoes drifted, whatever the gate said."""
    home = tmp_path_factory.mktemp("operated")
    reference = home / "reference.csv"
    imdb.head(2500).to_csv(reference, index=False)
    sentinel(home, "bootstrap", "--reference", str(reference))
    demo.drop(rotten.iloc[:2000], home / "data" / "incoming", "rotten.csv")
    sentinel(home, "process")
    return home


def champion(home: Path) -> str | None:
    return next((m["version"] for m in as_json(home, "models") if "champion" in m["aliases"]), None)


# The overrides happen in this order, once, whichever test asks first (each fixture asks for the one
# before it), and each records what a test checks right after it: a test passes alone or in any order.
@pytest.fixture(scope="module")
def rolled_back(home) -> dict:
    """Version 2 made champion by hand (if the gate had not), then rolled back: what the history, the
    refusal of a second rollback and the registry said right after."""
    if champion(home) != "2":
        sentinel(home, "promote", "2", "--reason", "reviewed the Rotten Tomatoes numbers", "--by", "ana")
        assert champion(home) == "2"
    sentinel(home, "rollback", "--reason", "customers complain", "--by", "ben")
    found = {"champion": champion(home), "history": as_json(home, "history"), "table": sentinel(home, "history").stdout}
    found["again"] = refused(home, "rollback", "--reason", "again")
    app = Sentinel(make_settings(home))
    found["alias"] = app.registry.alias_version("champion")
    found["tags"] = {v.version: v.tags for v in app.registry.versions()}
    app.close()
    return found


@pytest.fixture(scope="module")
def rejected(home, rolled_back) -> dict:
    """After the rollback, version 2 rejected and version 1 approved in review: `models` right after."""
    sentinel(home, "reject", "2", "--reason", "labels from a vendor we dropped", "--by", "ana")
    sentinel(home, "review", "1", "--approve", "--note", "checked the reference slice", "--by", "cho")
    return {"records": {r["version"]: r for r in as_json(home, "models")}, "table": sentinel(home, "models").stdout}


def test_models_lists_each_version_with_its_decision_and_filters(home):
    records = as_json(home, "models")
    assert [r["version"] for r in records][:2] == ["1", "2"]
    assert records[0]["tags"]["decision"] == "promoted"
    second = records[1]["tags"]
    assert second["decision"] in ("promoted", "challenger", "rejected")
    assert {"metric", "metric_new", "metric_champion", "delta", "p_value", "e_value", "drift_text", "batches", "trained_rows"} <= set(
        second
    )
    assert second["metric"] == "accuracy" and any(k.startswith("slice_") for k in second)
    chosen = as_json(home, "models", "--decision", second["decision"])
    assert "2" in [r["version"] for r in chosen] and all(r["tags"]["decision"] == second["decision"] for r in chosen)
    assert [r["version"] for r in as_json(home, "models", "--role", "champion")] == [champion(home)]


def test_refusals_are_one_line_and_exit_1(home):
    assert "unknown version 99" in refused(home, "promote", "99", "--reason", "x")
    current = champion(home)
    assert "champion already" in refused(home, "promote", current, "--reason", "x")
    assert "is the champion" in refused(home, "reject", current, "--reason", "x")
    assert "exactly one of --approve or --reject" in refused(home, "review", "1")
    assert "unknown version 7" in refused(home, "show", "7")
    assert "not in" in refused(home, "requeue", "never-dropped.csv")
    assert "unknown batch 'b-none'" in refused(home, "report", "--batch", "b-none")


def test_a_drift_check_keeps_its_snapshot_and_renders_its_page_when_asked(home):
    """By default a check keeps Evidently's snapshot JSON (in reports/drift/ and as its MLflow run's
    artifact); `sentinel report --batch` renders the HTML report from it once."""
    [batch] = [b for b in as_json(home, "batches") if b["file"] == "rotten.csv"]
    kept = Path(batch["drift"]["report"])
    assert kept.suffix == ".json" and kept.stat().st_size < 1_000_000
    made = as_json(home, "report", "--batch", batch["batch_id"])
    page = Path(made["html"])
    assert made["batch"] == batch["batch_id"] and page == kept.with_suffix(".html")
    html = page.read_text()
    for signal in drift.SIGNALS:
        assert html.count(f"Drift in column '{signal}'") == 1, signal
    assert str(page) in sentinel(home, "report", "--batch", batch["batch_id"]).stdout  # made once, then found


def test_promote_then_rollback_and_the_history_tells_it(rolled_back):
    assert rolled_back["champion"] == "1"
    moves = rolled_back["history"]
    assert moves[0]["alias"] == "champion" and (moves[0]["from"], moves[0]["to"]) == ("2", "1") and moves[0]["kind"] == "rollback"
    assert moves[0]["by"] == "ben" and "customers complain" in moves[0]["reason"]
    assert [m["at"] for m in moves] == sorted((m["at"] for m in moves), reverse=True)
    # version 1 was the first champion: nothing before it
    assert "no previous champion" in rolled_back["again"]
    # the registry agrees with the ledger, and tags say who overruled what
    assert rolled_back["alias"] == "1"
    info = rolled_back["tags"]
    assert info["2"]["sentinel.role"] == "rolled-back" and "ben" in info["2"]["sentinel.override"]
    # the table a person reads
    table = rolled_back["table"]
    assert "customers complain" in table and "ben" in table and "champion" in table


def test_reject_and_review_write_tags_and_the_ledger(home, rejected):
    records = rejected["records"]
    assert records["2"]["tags"]["role"] == "rejected" and "challenger" not in records["2"]["aliases"]
    assert records["1"]["tags"]["review"] == "approved" and records["1"]["tags"]["reviewed_by"] == "cho"
    assert records["1"]["tags"]["review_note"] == "checked the reference slice"
    app = Sentinel(make_settings(home))
    assert app.ledger.model(app.settings.registered_model, "2").decision == "rejected"
    assert not retrain_due.batches_to_learn(app, app.require_champion())  # its batch is not offered again
    app.close()
    table = rejected["table"]
    assert "approved by cho" in table and "rejected" in table


def test_show_gives_the_whole_lineage_of_a_version(home, rolled_back):
    found = as_json(home, "show", "2")
    assert found["version"] == "2"
    [batch] = found["new_batches"]
    assert batch["file"] == "rotten.csv" and batch["rows"] == 2000
    [check] = batch["drift_checks"]
    assert check["detected"] and check["against_version"] == "1" and check["fired"]
    assert check["mlflow_run"] and Path(check["report"]).exists()
    assert found["retrain"]["run_name"].startswith("retrain-") and found["retrain"]["mlflow_run"]
    assert found["gate"]["decision"] in ("promoted", "challenger", "rejected") and found["gate"]["comparison"]["metric_new"] > 0
    assert {s["name"] for s in found["gate"]["comparison"]["slices"]} >= {"shifted", "reference"}
    assert any(m["reason"].startswith("rollback: ") for m in found["alias_moves"])
    text = sentinel(home, "show", "2").stdout
    assert "rotten.csv" in text and "gate:" in text


@pytest.mark.parametrize("command", [["models", "--json"], ["show", "2", "--json"]])
def test_read_commands_without_a_server_read_mlflows_store_without_importing_mlflow(home, command):
    """No MLflow server: the registry's versions, tags and aliases come from the SQLite store itself, the
    same records as through MLflow's client (the tests above), without the seconds its import costs."""
    env = os.environ | {"SENTINEL_HOME": str(home)} | SMALL_DRIFT_ENV
    ran = subprocess.run([sys.executable, "-c", harness.MODULES_PROBE, *command], env=env, capture_output=True, text=True, timeout=60)
    assert ran.returncode == 0, ran.stderr
    assert "mlflow" not in ran.stderr.splitlines()[-1].split()
    printed = json.loads(ran.stdout)
    assert (printed[1] if command[0] == "models" else printed)["tags"]["metric"] == "accuracy"


def test_a_quarantined_file_is_requeued_after_its_fix(home, imdb):
    incoming = home / "data" / "incoming"
    broken = imdb.iloc[3000:3300]
    (incoming / "semicolons.csv").write_text(broken.to_csv(index=False, sep=";"))
    sentinel(home, "process")
    [listed] = [r for r in as_json(home, "batches", "--quarantined") if r["file"] == "semicolons.csv"]
    assert listed["reason"]["fix"]
    quarantined = home / "data" / "quarantine" / "semicolons.csv"
    quarantined.write_text(broken.to_csv(index=False))  # the person fixes it in place
    sentinel(home, "requeue", "semicolons.csv")
    assert (incoming / "semicolons.csv").exists() and not quarantined.exists()
    assert list((home / "data" / "quarantine").glob("semicolons.csv.reason.json.requeued-*"))
    [record] = as_json(home, "process")
    assert record["status"] == "accepted"


def bootstrapped(home: Path, imdb, reference_rows: int, **settings) -> Sentinel:
    """A project in `home` whose first champion learned the first `reference_rows` IMDB reviews."""
    app = Sentinel(make_settings(home, intake={"settle_seconds": 0.05}, drift=SMALL_DRIFT, **settings))
    reference = home / "reference.csv"
    imdb.head(reference_rows).to_csv(reference, index=False)
    retraining.bootstrap(app, reference)
    return app


def test_operations_on_a_postgresql_ledger(tmp_path, postgres_url, imdb, rotten):
    app = bootstrapped(tmp_path, imdb, 2000, ledger_url=postgres_url)
    settings = app.settings
    demo.drop(rotten.iloc[2000:3500], settings.incoming_dir, "rotten.csv")
    loop.process(app)
    if app.registry.alias_version("champion") != "2":
        promotion.promote(app, "2", "by hand", "ana")
    promotion.rollback(app, "back", "ben")
    assert app.registry.alias_version("champion") == "1"
    moves = read_models.history(app)
    assert (moves[0]["from"], moves[0]["to"], moves[0]["by"]) == ("2", "1", "ben")
    assert read_models.lineage(app, "2")["new_batches"][0]["file"] == "rotten.csv"
    app.close()


def test_a_challenger_keeps_its_drift_reference_so_a_hand_promotion_only_moves_aliases(tmp_path, imdb, rotten, monkeypatch):
    """The retrain that holds a challenger keeps the drift reference the worker built while it fitted;
    promoting it later builds nothing (a hand promote took 5.9 s on the demo's reference when it did),
    and shadow evidence only replaces the accuracy the reference expects."""
    app = bootstrapped(tmp_path, imdb, 2000)
    demo.drop(rotten.iloc[3500:3800], app.settings.incoming_dir, "rotten.csv")
    loop.process(app)
    held = app.ledger.model(app.settings.registered_model, "2")
    assert app.registry.alias_version("challenger") == "2" and held.decision == "challenger"
    kept = Path(held.reference_path)
    assert kept.is_file() and held.calibration["expected_accuracy"] > 0.5
    written = kept.stat().st_mtime_ns

    def never(*args, **kwargs):
        raise AssertionError("a kept drift reference was built again")

    monkeypatch.setattr(drift_reference, "build_reference", never)
    updated = references.ensure_reference(app, held, expected=(0.75, 640))  # as a promotion by shadow evidence
    assert (updated.calibration["expected_accuracy"], updated.calibration["expected_rows"]) == (0.75, 640)
    assert {k: v for k, v in updated.calibration.items() if not k.startswith("expected")} == {
        k: v for k, v in held.calibration.items() if not k.startswith("expected")
    }
    promotion.promote(app, "2", "by hand", "ana")
    champion = app.require_champion()
    assert champion.version == "2" and Path(champion.reference_path) == kept and kept.stat().st_mtime_ns == written
    app.close()


def test_doctor_finds_where_the_ledger_files_and_registry_disagree(tmp_path, imdb):
    app = bootstrapped(tmp_path, imdb, 1500)
    settings = app.settings
    demo.drop(imdb.iloc[1500:1800], settings.incoming_dir, "stable.csv")
    loop.process(app)
    healthy = sentinel(tmp_path, "doctor", "--json")
    assert json.loads(healthy.stdout)["ok"] is True

    [batch] = [b for b in app.ledger.batches() if b.file_name == "stable.csv"]
    Path(batch.stored_path).unlink()  # a file lost behind the ledger's back
    (settings.batches_dir / "20261126-000000-abcdef.parquet").write_bytes(b"")  # a store whose commit never came
    app.registry.set_alias("challenger", "1")  # an alias moved in MLflow only
    result = sentinel(tmp_path, "doctor", "--json", ok=False)
    assert result.returncode == 1
    problems = {c["name"]: c["problems"] for c in json.loads(result.stdout)["checks"]}
    assert any(batch.batch_id in p for p in problems["accepted batches are on disk"])
    assert any("20261126-000000-abcdef" in p for p in problems["every stored batch is in the ledger"])
    assert any("alias challenger" in p for p in problems["MLflow's aliases agree with the ledger's alias history"])
    assert problems["every registered version is in the ledger"] == []
    assert "NO" in sentinel(tmp_path, "doctor", ok=False).stdout

    # a version registered by a retrain that stopped before the ledger recorded it, and made champion
    client = app.registry.client
    source = client.get_model_version_download_uri(settings.registered_model, "1")
    stray = client.create_model_version(settings.registered_model, source=source).version
    app.registry.set_alias("champion", str(stray))

    repaired = json.loads(sentinel(tmp_path, "doctor", "--repair", "--json").stdout)
    assert repaired["ok"] is True, repaired
    assert Path(batch.stored_path).exists()  # rebuilt from the original bytes
    assert (settings.quarantine_dir / "orphaned" / "20261126-000000-abcdef.parquet").exists()  # set aside, not deleted
    assert app.registry.alias_version("champion") == "1"
    assert {v.version: v.tags for v in app.registry.versions()}[str(stray)]["sentinel.role"] == "incomplete"
    moves = read_models.history(app)
    assert any(m["alias"] == "challenger" and m["to"] == "1" and m["by"] == "sentinel doctor" for m in moves)
    assert any(m["alias"] == "champion" and m["from"] == str(stray) and m["to"] == "1" for m in moves)
    assert json.loads(sentinel(tmp_path, "doctor", "--json").stdout)["ok"] is True
    app.close()


def test_a_champion_without_a_drift_reference_gets_one_and_checks_go_on(tmp_path, imdb):
    """A retrain killed after the ledger recorded its promotion but before it wrote the drift reference
    (seen in CI: `up` restarted mid-retrain) leaves a promotion that reconcile finishes; the new champion
    must get its reference then, or every later drift check fails. A reference lost from disk is rebuilt
    by the next check."""
    from sentinel.ledger import ModelRow, TrainingRunRow

    app = bootstrapped(tmp_path, imdb, 1500)
    settings = app.settings
    first = app.require_champion()
    # version 2: same artifact as version 1, promoted by the gate against version 1, then the process died
    source = app.registry.client.get_model_version_download_uri(settings.registered_model, "1")
    stranded = str(app.registry.client.create_model_version(settings.registered_model, source=source).version)
    with app.ledger.transaction() as session:
        run = TrainingRunRow(
            run_name="retrain-killed",
            batch_ids=[],
            model_version=stranded,
            decision="promoted",
            reason="beat version 1",
            comparison={"champion_version": "1"},
        )
        session.add(run)
        session.flush()
        session.add(
            ModelRow(
                model_name=settings.registered_model,
                version=stranded,
                mlflow_run_id=first.mlflow_run_id,
                training_run_id=run.id,
                batch_ids=first.batch_ids,
                artifact_sha256=first.artifact_sha256,
                decision="promoted",
            )
        )

    loop.reconcile(app)
    champion = app.require_champion()
    assert champion.version == stranded and Path(champion.reference_path).is_file() and champion.calibration

    Path(champion.reference_path).unlink()  # lost behind Sentinel's back
    demo.drop(imdb.iloc[1500:1800], settings.incoming_dir, "after.csv")
    loop.process(app)
    [batch] = [b for b in app.ledger.batches() if b.file_name == "after.csv"]
    assert batch.drift_status in ("clear", "detected")
    assert Path(app.require_champion().reference_path).is_file()
    assert json.loads(sentinel(tmp_path, "doctor", "--json").stdout)["ok"] is True
    app.close()


def test_an_mlflow_that_does_not_answer_is_an_error_in_seconds_never_an_empty_registry(home, tmp_path, imdb):
    """MLflow down (nothing listens at its URI): every command that must ask it says so in one line with
    exit code 3 within 15 s; none reads the outage as "no champion", and nothing moves. Once MLflow
    answers again, the loop finishes what waited."""
    import shutil
    import socket
    import time

    project = tmp_path / "project"
    shutil.copytree(home, project)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}"  # closed again before MLflow is asked
    moves_before = as_json(project, "history")
    down = {"SENTINEL_MLFLOW_TRACKING_URI": dead}

    def fails_fast(*args: str, within: float = 15) -> str:
        began = time.monotonic()
        env = os.environ | {"SENTINEL_HOME": str(project), "COLUMNS": "200"} | SMALL_DRIFT_ENV | down
        result = subprocess.run([sys.executable, "-m", "sentinel.cli", *args], env=env, capture_output=True, text=True, timeout=120)
        assert result.returncode == 3, result.stdout + result.stderr
        assert time.monotonic() - began < within
        [line] = result.stderr.strip().splitlines()
        assert line.startswith("error: MLflow") and dead in line and "bootstrap" not in line
        return line

    fails_fast("models", "--json")
    fails_fast("promote", "1", "--reason", "while MLflow is down")
    fails_fast("rollback", "--reason", "while MLflow is down")
    demo.drop(imdb.iloc[-300:], project / "data" / "incoming", "while-down.csv")
    fails_fast("process", within=40)  # its imports (Evidently, scikit-learn) alone take 10 s on a busy machine
    assert as_json(project, "history") == moves_before
    [waiting] = [b for b in as_json(project, "batches") if b["file"] == "while-down.csv"]
    assert waiting["status"] == "accepted" and waiting["drift"] is None
    sentinel(project, "process")
    [done] = [b for b in as_json(project, "batches") if b["file"] == "while-down.csv"]
    assert done["drift"] is not None
