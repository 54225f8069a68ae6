"""When a retrain is due without harmful drift: a refresh once harmlessly drifted rows add up to a share of
what the champion learned, and a probe at the first such batch against a champion that learned no drift."""

from __future__ import annotations

from sentinel import intake
from sentinel.context import Sentinel
from sentinel.ledger import BatchRow, ModelRow, TrainingRunRow
from sentinel.retrain_due import refresh_due
from sentinel.retraining import training_data
from tests.conftest import make_settings


def project(tmp_path, **training) -> Sentinel:
    return Sentinel(make_settings(tmp_path, training=training))


def arrive(app: Sentinel, batch_id: str, drift_status: str, rows: int = 100, trained_in: int | None = None, frame=None) -> None:
    stored = intake.store(batch_id, frame, b"", app.settings)[0] if frame is not None else None
    with app.ledger.transaction() as session:
        session.add(
            BatchRow(
                batch_id=batch_id, file_name=f"{batch_id}.csv", sha256=batch_id, rows=rows, status="accepted",
                drift_status=drift_status, trained_in=trained_in, stored_path=str(stored) if stored else None,
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


def test_a_retrain_judges_every_drifted_batch_the_champion_has_not_learned(tmp_path, imdb):
    """A challenger superseded before its evidence was enough leaves its drifted batches unlearned: the next
    retrain is judged on them as well as on the drift that started it, not on that one batch alone."""
    app = project(tmp_path)
    rows = iter(range(0, 10_000, 100))

    def arrive_rows(batch_id, status, trained_in=None):
        start = next(rows)
        arrive(app, batch_id, status, trained_in=trained_in, frame=imdb.iloc[start : start + 100].reset_index(drop=True))

    arrive_rows("ref", "none")
    first = champion(app, "1", ["ref"])
    arrive_rows("stable", "clear")
    arrive_rows("shift-1", "detected", trained_in=1)  # learned by a challenger that was not promoted
    arrive_rows("shift-2", "harmless", trained_in=1)
    arrive_rows("shift-3", "detected")  # the drift no retrain has answered yet
    data = training_data(app, first)
    assert data.cause == "drift" and data.shifted_batches == ("shift-1", "shift-2", "shift-3")
    assert set(data.new_batches) == {"stable", "shift-1", "shift-2", "shift-3"}
