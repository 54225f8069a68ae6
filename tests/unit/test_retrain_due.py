"""When a retrain is due without harmful drift: a refresh once harmlessly drifted rows add up to a share of
what the champion learned, and a probe at the first such batch against a champion that learned no drift."""

from __future__ import annotations

from sentinel.context import Sentinel
from sentinel.ledger import BatchRow, ModelRow, TrainingRunRow
from sentinel.retrain_due import refresh_due
from tests.conftest import make_settings


def project(tmp_path, **training) -> Sentinel:
    return Sentinel(make_settings(tmp_path, training=training))


def arrive(app: Sentinel, batch_id: str, drift_status: str, rows: int = 100, trained_in: int | None = None) -> None:
    with app.ledger.transaction() as session:
        session.add(
            BatchRow(
                batch_id=batch_id, file_name=f"{batch_id}.csv", sha256=batch_id, rows=rows, status="accepted",
                drift_status=drift_status, trained_in=trained_in,
            )
        )  # fmt: skip


def champion(app: Sentinel, version: str, batch_ids: list[str], trained_rows: int = 1600) -> ModelRow:
    with app.ledger.transaction() as session:
        run = TrainingRunRow(run_name=f"run-{version}", batch_ids=batch_ids, trained_rows=trained_rows)
        session.add(run)
        session.flush()
        session.add(
            ModelRow(
                model_name=app.settings.registered_model, version=version, mlflow_run_id=version, training_run_id=run.id,
                batch_ids=batch_ids, artifact_sha256="-", decision="promoted",
            )
        )  # fmt: skip
    return app.ledger.model(app.settings.registered_model, version)


def test_the_first_harmless_drift_against_a_champion_starts_a_probe(tmp_path):
    app = project(tmp_path)
    arrive(app, "ref", "none", rows=2000)
    first = champion(app, "1", ["ref"])
    arrive(app, "stable", "clear")
    assert not refresh_due(app, first)  # stable batches never start a retrain
    arrive(app, "new-site", "harmless")
    assert refresh_due(app, first)  # 100 rows, far below a quarter of 1,600: the probe
    assert not refresh_due(project(tmp_path, refresh_first=False), first)


def test_once_probed_harmless_drift_waits_for_its_share(tmp_path):
    app = project(tmp_path)
    arrive(app, "ref", "none", rows=2000)
    first = champion(app, "1", ["ref"])
    arrive(app, "probed", "harmless", trained_in=1)  # a retrain tried it; its model was not promoted
    arrive(app, "next", "harmless")
    assert not refresh_due(app, first)
    for i in range(3):
        arrive(app, f"more-{i}", "harmless")
    assert refresh_due(app, first)  # 400 untried rows: a quarter of what the champion learned
    # a champion that learned drifted batches is past its probe: only the share counts
    second = champion(app, "2", ["ref", "probed", "next", "more-0", "more-1", "more-2"])
    arrive(app, "after", "harmless")
    assert not refresh_due(app, second)
