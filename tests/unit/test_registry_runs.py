"""A drift check's MLflow run: created in a thread while the check measures, finished with what it found."""

from __future__ import annotations

from tests.conftest import make_settings


def test_a_run_started_early_holds_every_tag_metric_parameter_and_the_report(tmp_path):
    from sentinel.registry import Registry

    registry = Registry(make_settings(tmp_path))
    report = tmp_path / "drift-a.html"
    report.write_text("<html>report</html>")
    started = registry.start_run("drift", "drift-a", {"sentinel.batch": "a"})
    run_id = registry.finish_run(started, {"sentinel.detected": "true"}, {"text_score": 0.61}, {"text_method": "auc"}, report)
    run = registry.client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "drift-a"
    assert run.data.tags["sentinel.batch"] == "a" and run.data.tags["sentinel.detected"] == "true"
    assert "mlflow.user" in run.data.tags  # the tags MLflow's own `start_run` adds
    assert run.data.metrics == {"text_score": 0.61} and run.data.params == {"text_method": "auc"}
    assert [a.path for a in registry.client.list_artifacts(run_id, "reports")] == ["reports/drift-a.html"]

    second = registry.log_run("drift", "drift-b", {}, {}, {}, tmp_path / "no-report.html")  # the cached experiment
    assert registry.client.get_run(second).info.experiment_id == run.info.experiment_id


def test_a_run_started_for_a_check_that_failed_ends_failed(tmp_path):
    from sentinel.registry import Registry

    registry = Registry(make_settings(tmp_path))
    started = registry.start_run("drift", "drift-c", {})
    registry.abandon_run(started)
    assert registry.client.get_run(started.result().info.run_id).info.status == "FAILED"
