"""The whole standalone loop on real reviews, driven the way a user drives it: files dropped into the
drop zone and the `sentinel` command. MLflow is real (SQLite store, local artifacts).

The module's project lives one story: stable batches, small ones, a mixed one, a real shift, flipped
labels, a duplicate. Each chapter is a module fixture that asks for the chapters before it, so the
story always happens in the same order, once, whichever test runs first or alone; a test asserts on
what its chapter recorded, not on what the project holds by the time it runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient

from sentinel import demo
from sentinel.context import Sentinel
from sentinel.settings import Settings

pytestmark = pytest.mark.slow
SENTINEL = [sys.executable, "-m", "sentinel.cli"]


def run(home: Path, *args: str, check: bool = True, **settings: str) -> subprocess.CompletedProcess:
    env = os.environ | {"SENTINEL_HOME": str(home), "SENTINEL_INTAKE__SETTLE_SECONDS": "0.1", "COLUMNS": "200"}  # tables unwrapped
    env |= {f"SENTINEL_{name.upper()}": value for name, value in settings.items()}
    result = subprocess.run([*SENTINEL, *args], env=env, capture_output=True, text=True, timeout=600)
    if check and result.returncode != 0:
        raise AssertionError(f"sentinel {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def process(home: Path) -> list[dict]:
    return json.loads(run(home, "process", "--json").stdout)


@pytest.fixture(scope="module")
def home(tmp_path_factory, imdb) -> Path:
    home = tmp_path_factory.mktemp("project")
    reference = home / "reference.csv"
    imdb.head(5000).to_csv(reference, index=False)
    run(home, "bootstrap", "--reference", str(reference))
    return home


@pytest.fixture(scope="module")
def stable(home, imdb) -> list[dict]:
    """Chapter 1: twenty stable IMDB batches, processed at once."""
    for i in range(20):
        demo.drop(imdb.iloc[5000 + i * 500 : 5000 + (i + 1) * 500], home / "data" / "incoming", f"stable-{i:02}.csv")
    return process(home)


@pytest.fixture(scope="module")
def small(home, stable, imdb) -> list[dict]:
    """Chapter 2: three 40-row batches, each processed as it arrives."""
    seen = []
    for i in range(3):
        demo.drop(imdb.iloc[17000 + 40 * i : 17040 + 40 * i], home / "data" / "incoming", f"small-{i}.csv")
        seen += process(home)
    return seen


@pytest.fixture(scope="module")
def mixed(home, small, imdb, rotten) -> dict:
    """Chapter 3: a batch that is 30 % Rotten Tomatoes."""
    demo.drop(demo.mixed(imdb.iloc[15000:15700], rotten.iloc[:300], 0.3), home / "data" / "incoming", "mixed-30.csv")
    (record,) = process(home)
    return record


@pytest.fixture(scope="module")
def shift(home, mixed, rotten) -> tuple[str, list[dict]]:
    """Chapter 4: three Rotten Tomatoes batches, a real domain shift. (the champion before, the records)"""
    app = Sentinel(Settings(home=home))
    before = app.champion().version
    app.close()
    for i in range(3):
        demo.drop(rotten.iloc[1000 + i * 2000 : 3000 + i * 2000], home / "data" / "incoming", f"rotten-{i}.csv")
    return before, process(home)


@pytest.fixture(scope="module")
def flipped(home, shift, imdb) -> dict:
    """Chapter 5: a stable batch with every label flipped. Its record, and the champion and the number of
    retrains before and after it."""

    def state() -> tuple[str, int]:
        app = Sentinel(Settings(home=home))
        try:
            return app.champion().version, len(app.ledger.training_runs())
        finally:
            app.close()

    before = state()
    demo.drop(imdb.iloc[16000:17000].assign(label=lambda f: 1 - f["label"]), home / "data" / "incoming", "flipped.csv")
    (record,) = process(home)
    return {"record": record, "before": before, "after": state()}


@pytest.fixture(scope="module")
def story(home, flipped, imdb) -> dict:
    """Chapter 6, the last: the first stable batch's bytes again. Returns the duplicate's record."""
    demo.drop(imdb.iloc[5000:5500], home / "data" / "incoming", "stable-00-again.csv")
    (record,) = process(home)
    return record


STORY_FILES = ("stable-", "small-", "mixed-", "rotten-", "flipped", "stable-00-again")


@pytest.fixture
def app(home):
    sentinel = Sentinel(Settings(home=home))
    yield sentinel
    sentinel.close()


def test_bootstrap_made_a_champion_with_a_calibrated_reference(app):
    first = app.ledger.model(app.settings.registered_model, "1")
    assert first.decision == "promoted"
    assert Path(first.reference_path).exists()
    assert first.calibration["draws"] == app.settings.drift.calibration_draws
    oldest = app.ledger.alias_moves(app.settings.registered_model)[-1]
    assert (oldest.alias, oldest.from_version, oldest.to_version) == ("champion", None, "1")


def test_twenty_stable_imdb_batches_raise_no_alarm(stable):
    records = stable
    assert len(records) == 20 and all(r["status"] == "accepted" for r in records)
    alarms = [(r["file"], [s for s in r["drift"]["signals"] if s["drifted"]]) for r in records if r["drift"]["detected"]]
    assert alarms == []
    assert all(r["decision"] == "none" for r in records)  # no drift, no retrain


def test_small_batches_are_accepted_pooled_and_measured_once(home, app, small):
    """Three 40-row batches, dropped one after another: each is accepted; the first two wait for their
    pool; the third completes it, and the three are measured once, as one sample."""
    seen = small
    assert len(seen) == 3 and all(r["status"] == "accepted" and r["rows"] == 40 for r in seen)
    assert [r["waiting_for_pool"] for r in seen] == [True, True, False] and seen[0]["drift"] is None
    members = [r["batch_id"] for r in seen]
    assert seen[2]["drift"]["pool"] == {"members": members, "rows": 120, "complete": True}
    checks = [app.ledger.drift_checks(batch_id) for batch_id in members]
    assert all(len(c) == 1 for c in checks) and len({c[0].mlflow_run_id for c in checks}) == 1  # one measurement
    table = run(home, "batches").stdout
    assert "pool of 3" in table


def test_a_batch_that_is_30_percent_rotten_tomatoes_is_detected_and_says_whether_it_harms(mixed):
    record = mixed
    assert record["drift"]["detected"]
    for signal in record["drift"]["signals"]:
        assert {"name", "score", "threshold", "method", "drifted"} <= set(signal)
    # the trigger policy (harmful drift by default) says whether this drift starts a retrain, and why
    trigger = record["drift"]["trigger"]
    assert trigger["rule"] == "harmful" and trigger["why"] and trigger["fired"] == record["retrain_due"]
    if not record["retrain_due"]:
        assert "without a loss of accuracy" in trigger["why"]
        # harmless drift still counts towards a refresh: here, with the 20 stable batches, it may start one
        assert record["decision"] == "none" or record["retrain_cause"] == "refresh"


def test_a_real_domain_shift_is_learned_and_promoted(app, shift):
    before, records = shift
    assert all(r["drift"]["detected"] for r in records)
    assert {r["decision"] for r in records} == {"promoted"}, records[0]
    champion = app.ledger.model(app.settings.registered_model, records[0]["model_version"])
    assert champion.version != before
    move = next(m for m in app.ledger.alias_moves(app.settings.registered_model) if m.to_version == champion.version)
    assert (move.alias, move.from_version, move.actor) == ("champion", before, "sentinel")
    # after a promotion drift is measured against the new champion's training data
    assert set(champion.batch_ids) >= {r["batch_id"] for r in records}
    # that retrain learned every batch not yet learned, the pooled small ones and the harmless drift included
    run_id = next(r.id for r in app.ledger.training_runs() if r.mlflow_run_id == records[0]["retrain_run_id"])
    small = [b for b in app.ledger.batches() if b.file_name.startswith(("small-", "mixed-"))]
    assert len(small) == 4 and {b.batch_id for b in small} <= set(champion.batch_ids)
    # and judged superiority where the data moved: on the Rotten Tomatoes batches' held-out rows
    comparison = app.ledger.training_run(run_id).comparison
    slices = {s["name"]: s for s in comparison["slices"]}
    assert comparison["deciding_slice"] == "shifted" and slices["shifted"]["verdict"] == "better"
    assert slices["reference"]["verdict"] == "non-inferior"  # and on other new rows, if any were not learned yet
    assert all(s["verdict"] == "non-inferior" for name, s in slices.items() if name != "shifted")


def test_retrain_run_is_fully_logged_to_mlflow(app, shift):
    run_row = next(r for r in app.ledger.training_runs() if r.mlflow_run_id == shift[1][0]["retrain_run_id"])
    client = MlflowClient(app.settings.mlflow_tracking_uri)
    run_data = client.get_run(run_row.mlflow_run_id)
    assert run_data.info.run_name.startswith("retrain-")
    assert {"C", "ngram_max", "train_rows"} <= set(run_data.data.params)
    assert {"new_accuracy", "reference_accuracy", "champion_new_accuracy", "delta", "metric_new", "p_value", "e_value"} <= set(
        run_data.data.metrics
    )
    assert {d.dataset.name.split("-")[0] for d in run_data.inputs.dataset_inputs} == {"training", "holdout_new", "holdout_reference"}
    artifacts = {a.path for a in client.list_artifacts(run_row.mlflow_run_id, "evaluation")}
    assert "evaluation/confusion_and_roc.png" in artifacts
    version = client.get_model_version(app.settings.registered_model, run_row.model_version)
    tags = version.tags
    for key in (
        "role",
        "decision",
        "reason",
        "batches",
        "metric",
        "metric_new",
        "metric_champion",
        "delta",
        "p_value",
        "e_value",
        "rule",
        "drift_text",
        "drift_label",
        "trained_rows",
    ):
        assert f"sentinel.{key}" in tags, key
    assert tags["sentinel.decision"] == run_row.decision
    # the version's page explains itself: what it learned, the decision, the gate's numbers per slice
    described = version.description
    assert f"**{run_row.decision}**" in described and "`rotten-0.csv`" in described
    assert "| shifted | superiority |" in described and "| reference | non-inferiority |" in described


def test_flipped_labels_never_lead_to_a_promotion(app, flipped):
    record = flipped["record"]
    assert record["suspect_labels"] and record["drift"]["detected"]
    assert record["decision"] == "none"
    assert flipped["after"] == flipped["before"]  # the same champion, no retrain
    assert record["batch_id"] not in {b for r in app.ledger.training_runs() for b in r.batch_ids}  # nor learned later


def test_the_same_bytes_again_are_a_duplicate(home, story):
    record = story
    assert record["status"] == "duplicate" and "already accepted" in record["reason"]["message"]
    assert (home / "data" / "quarantine" / "stable-00-again.csv").exists()


def test_batches_json_lists_every_batch_with_its_story(home, story):
    records = json.loads(run(home, "batches", "--json").stdout)
    assert {"batch_id", "file", "sha256", "rows", "status", "reason", "drift", "retrain_run_id", "model_version", "decision"} <= set(
        records[0]
    )
    statuses = [r["status"] for r in records if r["file"].startswith(STORY_FILES)]
    assert statuses.count("duplicate") == 1 and statuses.count("accepted") == 28
    assert json.loads(run(home, "batches", "--json", "--quarantined").stdout)[0]["status"] == "duplicate"


def test_models_json_and_predict(home, shift, imdb):
    models = json.loads(run(home, "models", "--json").stdout)
    assert [m["version"] for m in models] == [str(v) for v in range(1, len(models) + 1)]
    champions = [m for m in models if "champion" in m["aliases"]]
    assert len(champions) == 1 and champions[0]["tags"]["role"] == "champion"
    sample = home / "sample.csv"
    imdb.iloc[24000:24500].to_csv(sample, index=False)
    result = json.loads(run(home, "predict", str(sample), "--json").stdout)
    assert result["rows"] == 500 and len(result["predictions"]) == 500 and result["accuracy"] > 0.8
    first = json.loads(run(home, "predict", str(sample), "--version", "1", "--json").stdout)
    assert first["version"] == "1"


def test_user_mistakes_get_one_line_and_a_non_zero_exit(home):
    for args in (("predict", "missing.csv"), ("predict", "sample.csv", "--version", "99"), ("predict", "sample.csv", "--alias", "nobody")):
        result = run(home, *args, check=False)
        assert result.returncode == 1
        assert result.stderr.count("\n") == 1 and result.stderr.startswith("error:"), result.stderr
        assert "Traceback" not in result.stderr


def test_a_tampered_model_is_refused(app, home, imdb):
    sample = home / "tamper-sample.csv"
    imdb.iloc[24500:24600].to_csv(sample, index=False)
    client = MlflowClient(app.settings.mlflow_tracking_uri)
    location = client.get_model_version_download_uri(app.settings.registered_model, "1")
    stored = Path(location.removeprefix("file://")) / "model.pkl"
    original = stored.read_bytes()
    try:
        stored.write_bytes(original + b"\x00")
        result = run(home, "predict", str(sample), "--version", "1", check=False)
        assert result.returncode == 1 and "changed after registration" in result.stderr
    finally:
        stored.write_bytes(original)


def test_an_edited_mlmodel_or_an_added_file_is_refused_before_any_code_runs(app, home, imdb, tmp_path):
    """MLmodel edited to name another pickle placed beside model.pkl, whose loading would run code: the
    manifest recorded at registration names what changed, and nothing is unpickled."""
    import pickle

    sample = home / "tamper-sample.csv"
    imdb.iloc[24500:24600].to_csv(sample, index=False)
    client = MlflowClient(app.settings.mlflow_tracking_uri)
    folder = Path(client.get_model_version_download_uri(app.settings.registered_model, "1").removeprefix("file://"))
    mlmodel = folder / "MLmodel"
    original = mlmodel.read_text()
    marker = tmp_path / "code-ran"

    class RunsCode:
        def __reduce__(self):
            return (Path.touch, (marker,))

    planted = folder / "other.pkl"
    try:
        planted.write_bytes(pickle.dumps(RunsCode()))
        result = run(home, "predict", str(sample), "--version", "1", check=False)
        assert result.returncode == 1 and "other.pkl was added" in result.stderr, result.stderr
        mlmodel.write_text(original.replace("pickled_model: model.pkl", "pickled_model: other.pkl"))
        result = run(home, "predict", str(sample), "--version", "1", check=False)
        assert result.returncode == 1 and "MLmodel was changed" in result.stderr and "other.pkl was added" in result.stderr
        assert result.stderr.count("\n") == 1 and not marker.exists()
    finally:
        planted.unlink(missing_ok=True)
        mlmodel.write_text(original)
    assert run(home, "predict", str(sample), "--version", "1").returncode == 0


def test_a_batch_whose_check_keeps_failing_is_parked_and_the_batches_behind_it_go_on(home, app, imdb, story):
    """A stored batch corrupted on disk makes its drift check raise: it is tried again, then parked as
    failed (in `batches` and `doctor`), while the batch behind it is checked; requeued once fixed, it is
    checked like any other."""
    from sentinel import taking_in

    incoming = app.settings.incoming_dir
    demo.drop(imdb.iloc[21000:21600], incoming, "zz-corrupted.csv")
    demo.drop(imdb.iloc[21600:22200], incoming, "zz-behind-it.csv")
    broken, behind = [o.batch_id for o in sorted(taking_in.take_in(app, checks_drift=False), key=lambda o: o.file)]
    stored = Path(app.ledger.batch(broken).stored_path)
    good = stored.read_bytes()
    stored.write_bytes(b"PAR1 not a parquet file at all")
    settings = {"drift__check_attempts": "2", "drift__check_retry_seconds": "0"}
    run(home, "process", **settings)
    records = {r["batch_id"]: r for r in json.loads(run(home, "batches", "--json").stdout)}
    assert records[behind]["drift"] is not None
    parked = records[broken]
    assert parked["drift_status"] == "failed" and parked["drift"] is None
    assert parked["check_failures"]["attempts"] == 2 and parked["check_failures"]["error"]
    doctor = run(home, "doctor", "--json", check=False)
    assert doctor.returncode == 1 and f"sentinel requeue {broken}" in doctor.stdout
    stored.write_bytes(good)
    assert "checked for drift again" in run(home, "requeue", broken).stdout
    run(home, "process", **settings)
    again = {r["batch_id"]: r for r in json.loads(run(home, "batches", "--json").stdout)}[broken]
    assert again["drift"] is not None and again["drift_status"] != "failed"
    assert run(home, "doctor", "--json", check=False).returncode == 0
