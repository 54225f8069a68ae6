"""The model search against a real MLflow store: one parent run with a child run per candidate, the
choice in the ledger and on the version, and retrains that fit what was chosen."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from mlflow import MlflowClient

from sentinel import demo, loop, retraining
from sentinel.context import Sentinel
from sentinel.ledger import TuningRow
from tests.conftest import make_settings

pytestmark = pytest.mark.slow


@pytest.fixture
def project(tmp_path, imdb, request):
    retune = getattr(request, "param", 0.0)
    settings = make_settings(tmp_path, intake={"settle_seconds": 0.05}, tune={"at_bootstrap": True, "retune_text_drift": retune})
    app = Sentinel(settings)
    reference = tmp_path / "reference.csv"
    imdb.head(2000).to_csv(reference, index=False)
    retraining.bootstrap(app, reference)
    yield app
    app.close()


def test_bootstrap_searches_on_training_rows_and_logs_one_child_run_per_candidate(project):
    search = project.ledger.latest_tuning()
    [bootstrap_run] = project.ledger.training_runs()
    assert search.cause == "bootstrap" and search.rows == bootstrap_run.trained_rows < 2000  # held-out rows never searched
    client = MlflowClient(project.settings.mlflow_tracking_uri)
    parent = client.get_run(search.mlflow_run_id)
    assert parent.data.tags["sentinel.kind"] == "model-search"
    assert parent.data.params["chosen_family"] == search.chosen["family"] and float(parent.data.params["chosen_C"]) == search.chosen["C"]
    children = client.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert sorted(c.info.run_name for c in children) == sorted(c["name"] for c in search.candidates)
    assert all("cv_accuracy" in c.data.metrics and "cv_accuracy_fold2" in c.data.metrics and "C" in c.data.params for c in children)
    [chosen] = [c for c in children if c.data.tags["sentinel.chosen"] == "true"]
    assert chosen.data.metrics["cv_accuracy"] == max(c.data.metrics["cv_accuracy"] for c in children)

    # the first champion is the chosen configuration, and says where it came from
    training_run = client.get_run(bootstrap_run.mlflow_run_id)
    assert training_run.data.tags["sentinel.tuning_run"] == search.mlflow_run_id
    assert training_run.data.params["family"] == search.chosen["family"] and float(training_run.data.params["C"]) == search.chosen["C"]
    version = client.get_model_version(project.settings.registered_model, "1")
    assert f"chosen by the model search of MLflow run `{search.mlflow_run_id}`" in version.description


def learn_rotten(project, rotten) -> dict:
    """Drop a Rotten Tomatoes batch, which drifts, and return the params of the retrain it caused."""
    demo.drop(rotten.iloc[:1500], project.settings.incoming_dir, "rotten.csv")
    loop.process(project)
    [_, retrain_run] = project.ledger.training_runs()
    return MlflowClient(project.settings.mlflow_tracking_uri).get_run(retrain_run.mlflow_run_id).data.params


def test_a_retrain_fits_the_latest_choice(project, rotten):
    chosen = project.settings.model.model_copy(update={"family": "nb-lr", "C": 0.5}).model_dump()
    with project.ledger.transaction() as session:  # as if `sentinel tune` had chosen it
        session.add(TuningRow(cause="tune", rows=1, metric="accuracy", chosen=chosen, candidates=[], seconds=0.0))
    params = learn_rotten(project, rotten)
    assert (params["family"], params["C"]) == ("nb-lr", "0.5")
    assert project.ledger.latest_tuning().cause == "tune"  # retune_text_drift 0: no search on a retrain


@pytest.mark.parametrize("project", [0.7], indirect=True)
def test_a_retrain_after_large_text_drift_searches_again_and_fits_that_choice(project, rotten):
    params = learn_rotten(project, rotten)
    latest = project.ledger.latest_tuning()
    [_, retrain_run] = project.ledger.training_runs()
    assert latest.cause == "drift" and latest.rows == min(retrain_run.trained_rows, project.settings.tune.search_rows)
    assert (params["family"], float(params["C"])) == (latest.chosen["family"], latest.chosen["C"])


def test_sentinel_tune_prints_the_search_and_records_its_choice(project):
    env = os.environ | {"SENTINEL_HOME": str(project.settings.home), "SENTINEL_INTAKE__SETTLE_SECONDS": "0.05"}
    done = subprocess.run([sys.executable, "-m", "sentinel.cli", "tune", "--json"], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    latest = project.ledger.latest_tuning()
    assert printed["mlflow_run_id"] == latest.mlflow_run_id and latest.cause == "tune"
    assert printed["chosen"] == latest.chosen and {c["name"] for c in printed["candidates"]} >= {"word-lr C=4", "word-lr C=16"}
