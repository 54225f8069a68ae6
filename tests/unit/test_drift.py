"""Drift on real reviews with real Evidently: calibrated thresholds, every signal recorded, safe HTML."""

from __future__ import annotations

import os
from pathlib import Path
from signal import SIGKILL, SIGSTOP

import pandas as pd
import pytest

from sentinel import demo, drift, drift_reference, drift_worker
from sentinel.settings import DriftPolicy

POLICY = DriftPolicy(reference_rows=2000, calibration_draws=5, calibration_batch_rows=500)


@pytest.fixture(scope="module")
def calibrated(imdb):
    return drift_reference.build_reference(imdb.iloc[:3000], expected_accuracy=0.88, policy=POLICY)


def test_calibration_measures_the_noise_of_every_signal(calibrated):
    reference, calibration = calibrated
    assert len(reference) == 2000 and set(drift.DESCRIPTORS) <= set(reference.columns)
    assert set(calibration.mean) == set(drift.SIGNALS)
    assert 0.45 < calibration.mean["text"] < 0.55  # a stable split is no better than a coin
    assert all(v >= 0 for v in calibration.std.values())


def test_thresholds_widen_for_smaller_batches_and_respect_floors(calibrated):
    _, calibration = calibrated
    small, large = calibration.threshold("text", 100, POLICY), calibration.threshold("text", 2000, POLICY)
    assert small > large >= POLICY.text_threshold_floor
    assert calibration.threshold("label", 2000, POLICY) >= POLICY.label_threshold


def test_stable_batch_is_clear_and_shifted_batch_is_detected(imdb, rotten, calibrated):
    reference, calibration = calibrated
    stable = drift.measure(imdb.iloc[5000:5500], reference, calibration, None, POLICY)
    assert not stable.detected, stable.as_dict()
    shifted = drift.measure(demo.mixed(imdb.iloc[6000:6350], rotten.iloc[:150], 0.3), reference, calibration, None, POLICY)
    assert shifted.detected
    assert {s.name for s in shifted.signals} == set(drift.SIGNALS)
    for signal in shifted.signals:
        assert signal.method and signal.threshold > 0


@pytest.mark.parametrize("rows", [100, 500])
def test_a_calibration_draw_scores_what_the_report_scores(imdb, rotten, calibrated, rows):
    reference, _ = calibrated
    for batch in (imdb.iloc[5000 : 5000 + rows], demo.mixed(imdb.iloc[6000:6350], rotten.iloc[:150], 0.3).iloc[:rows]):
        current = drift.with_descriptors(batch)
        reported = {name: score for name, (score, _) in drift._scores(drift.run_report(current, reference)).items()}
        assert drift_reference.unrendered_scores(current, reference) == reported


def test_performance_signal_and_inverted_labels(imdb, calibrated):
    reference, calibration = calibrated
    batch = imdb.iloc[7000:7400]
    perfect = drift.measure(batch, reference, calibration, lambda f: batch["label"].to_numpy(), POLICY)
    assert not perfect.signal("performance").drifted and not perfect.suspect_labels
    inverted = drift.measure(batch, reference, calibration, lambda f: 1 - batch["label"].to_numpy(), POLICY)
    assert inverted.signal("performance").drifted and inverted.suspect_labels and inverted.detected


@pytest.mark.parametrize("kept", ["report.html", "report.json"])
def test_saved_report_carries_no_markup_from_the_data(imdb, calibrated, tmp_path, kept):
    """Whether the check writes the HTML or keeps the snapshot's JSON and the page is rendered from it."""
    from sentinel import evidently_workspace

    reference, calibration = calibrated
    hostile = imdb.iloc[8000:8300].copy()
    hostile.loc[hostile.index[:50], "text"] = "</script><script>alert(1)</script> <img src=x onerror=alert(2)>"
    report = tmp_path / kept
    drift.measure(hostile, reference, calibration, None, POLICY, report_path=report, workspace=tmp_path / "evidently", name="hostile")
    if report.suffix == ".json":
        [in_workspace] = (tmp_path / "evidently").glob("*/snapshots/*.json")
        assert in_workspace.read_bytes() == report.read_bytes()  # one serialisation, kept twice
        evidently_workspace.load_snapshot(report.read_text()).save_html(str(tmp_path / "rendered.html"))
        report = tmp_path / "rendered.html"
    html = report.read_text()
    for signal in drift.SIGNALS:  # the text worker's snapshot and this process's are joined into one report
        assert html.count(f"Drift in column '{signal}'") == 1, signal
    assert "alert(1)" in html  # the text is there, readable...
    assert "<script>alert(1)" not in html and "<img src=x" not in html  # ...but not as markup


@pytest.fixture
def own_worker(monkeypatch):
    """A drift worker of this test's own; the module's state is restored afterwards."""
    monkeypatch.setattr(drift_worker, "_worker", None)
    monkeypatch.setattr(drift_worker, "_work_here", False)
    monkeypatch.setattr(drift_worker, "_failures", 0)
    yield
    if drift_worker._worker is not None:
        drift_worker._worker.stop()


def zombies() -> list[int]:
    """Children of this process that exited and were never reaped."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] == "Z" and int(fields[1]) == os.getpid():
            found.append(int(stat.parent.name))
    return found


def test_a_killed_worker_is_reaped_and_replaced_and_its_job_done_here(imdb, calibrated, own_worker):
    """Killed with SIGKILL twice in a row: each time the batch's verdict is the same, no zombie is left,
    and the next job gets a new worker; after three failures in a row every job runs here."""
    reference, _ = calibrated
    current = drift.with_descriptors(imdb.iloc[9000:9400])
    expected = drift._scores(drift.run_report(current, reference))
    for _ in range(2):
        pending = drift.start_text_drift(current["text"], reference["text"])
        killed = pending.process.pid
        os.kill(killed, SIGKILL)
        assert drift._scores(drift.run_report(current, reference, pending)) == expected
        assert not zombies()
        replacement = drift.start_text_drift(current["text"], reference["text"])
        assert replacement is not None and replacement.process.pid != killed
        drift_worker.collect(replacement)
    drift_worker._failures = drift_worker.GIVE_UP_AFTER - 1
    pending = drift.start_text_drift(current["text"], reference["text"])
    pending.process.kill()
    assert drift._scores(drift.run_report(current, reference, pending)) == expected
    assert drift_worker._work_here and drift.start_text_drift(current["text"], reference["text"]) is None and not zombies()


def test_a_hung_worker_is_replaced_and_the_check_fails_to_be_tried_again(imdb, calibrated, own_worker):
    """A worker that stops answering (SIGSTOP) fails the check within the timeout instead of holding the
    loop; it is killed and reaped, and the next check gets a new worker."""
    import time

    reference, calibration = calibrated
    batch = imdb.iloc[9400:9800]
    policy = POLICY.model_copy(update={"worker_timeout_seconds": 3})
    drift_worker.warm_up()
    hung = drift_worker._worker.process
    os.kill(hung.pid, SIGSTOP)
    began = time.monotonic()
    with pytest.raises(drift_worker.WorkerHung, match="no answer in 3 s"):
        drift.measure(batch, reference, calibration, None, policy)
    assert time.monotonic() - began < 30
    assert hung.poll() is not None and not zombies()
    assert drift.measure(batch, reference, calibration, None, POLICY).signals  # a new worker: its imports take seconds
    assert drift_worker._worker is not None and drift_worker._worker.process.pid != hung.pid


def test_a_check_that_fails_before_collecting_its_text_job_frees_the_worker(imdb, calibrated, own_worker):
    reference, calibration = calibrated

    def predict(frame):
        raise ValueError("the champion cannot predict this")

    with pytest.raises(ValueError):
        drift.measure(imdb.iloc[9400:9800], reference, calibration, predict, POLICY)
    pending = drift.start_text_drift(imdb["text"].iloc[:60], imdb["text"].iloc[60:200])
    assert pending is not None  # a worker is free for the next check
    drift_worker.collect(pending)
    assert not zombies()


def test_worker_and_in_process_measure_the_same(imdb, calibrated, monkeypatch, own_worker):
    """The worker runs OpenBLAS on one thread (this process on every core): the same scores."""
    reference, _ = calibrated
    current = drift.with_descriptors(imdb.iloc[9500:9900])
    in_worker = drift._scores(drift.run_report(current, reference))
    environment = Path(f"/proc/{drift_worker._worker.process.pid}/environ").read_bytes().split(b"\0")
    assert b"OPENBLAS_NUM_THREADS=1" in environment and os.environ.get("OPENBLAS_NUM_THREADS") != "1"
    monkeypatch.setattr(drift_worker, "_work_here", True)
    assert drift._scores(drift.run_report(current, reference)) == in_worker


drift_neutralise = drift.neutralise  # the real one, for tests that count its calls


def test_a_head_start_is_claimed_only_by_the_same_batch_and_changes_no_verdict(imdb, rotten, calibrated, own_worker, monkeypatch):
    """With a backlog, the worker measures the next batch's text while the current one is recorded. The
    check of that batch claims it, and the rows it neutralised; any other check drops it (after reading
    it) and measures its own."""
    reference, calibration = calibrated
    stable, shifted = imdb.iloc[10_000:10_300], rotten.iloc[:300]
    alone = {b: drift.measure(f, reference, calibration, None, POLICY) for b, f in (("stable", stable), ("shifted", shifted))}
    neutralised = []
    monkeypatch.setattr(drift, "neutralise", lambda frame: neutralised.append(len(frame)) or drift_neutralise(frame))
    drift.start_ahead(stable, reference)
    claimed = drift._ahead.pending  # the worker that measures it
    assert not drift.can_start_ahead()  # one head start at a time
    assert drift.measure(stable, reference, calibration, None, POLICY) == alone["stable"]
    assert drift._ahead is None and not claimed.in_flight  # claimed and read
    assert neutralised == [len(stable)]  # once, for the head start
    drift.start_ahead(stable, reference)
    assert drift.measure(shifted, reference, calibration, None, POLICY) == alone["shifted"]  # not its batch
    assert neutralised == [len(stable), len(stable), len(shifted)]
    assert drift._ahead is None and not drift_worker._worker.in_flight  # the stale answer was read: the worker is free
    assert drift_worker._worker.process.poll() is None and not zombies()


def test_the_next_head_start_is_given_as_soon_as_the_worker_is_free(imdb, calibrated, own_worker, tmp_path):
    """`worker_free` runs once the worker holds nothing of this check, before its report is written, so
    the next batch's text is measured while this check writes its report; that head start is claimed,
    and its check writes the same report as a check without one."""
    reference, calibration = calibrated
    current, following = imdb.iloc[10_300:10_600], imdb.iloc[10_600:10_900]
    report = tmp_path / "report.html"
    seen = []

    def start_next():
        seen.append((drift.can_start_ahead(), report.exists()))
        drift.start_ahead(following, reference)

    drift.measure(current, reference, calibration, None, POLICY, report, worker_free=start_next)
    assert seen == [(True, False)] and report.exists()
    assert drift._ahead is not None  # measuring the following batch meanwhile
    claimed = drift.measure(following, reference, calibration, None, POLICY, tmp_path / "ahead.html")
    assert drift._ahead is None and not drift_worker._worker.in_flight
    drift_worker.work_in_process()
    assert drift.measure(following, reference, calibration, None, POLICY, tmp_path / "here.html") == claimed
    tabs = [(tmp_path / f"{name}.html").read_text().count("DATA DISTRIBUTION") for name in ("ahead", "here")]
    assert tabs[0] == tabs[1] > 0  # the widgets of every signal


def test_no_head_start_without_a_worker(imdb, calibrated, monkeypatch):
    reference, _ = calibrated
    monkeypatch.setattr(drift_worker, "_work_here", True)
    assert not drift.can_start_ahead()
    drift.start_ahead(imdb.iloc[:100], reference)
    assert drift._ahead is None


def test_a_reference_built_in_the_worker_equals_one_built_here(imdb, monkeypatch):
    policy = POLICY.model_copy(update={"calibration_draws": 3})
    training = imdb.iloc[10_000:12_500]
    job = drift_reference.ReferenceJob(training, policy, seed=3)
    assert job.pending is not None  # it went to the worker
    reference, calibration = job.result(expected_accuracy=0.9)
    here_reference, here_calibration = drift_reference.build_reference(training, 0.9, policy, seed=3)
    assert reference.equals(here_reference)
    assert calibration == here_calibration


def test_a_discarded_reference_job_frees_the_worker(imdb):
    job = drift_reference.ReferenceJob(imdb.iloc[12_500:14_000], POLICY.model_copy(update={"calibration_draws": 2}), seed=1)
    assert job.pending is not None
    job.discard()
    assert drift.start_text_drift(imdb["text"].iloc[:60], imdb["text"].iloc[60:200]) is not None  # free again
    drift_worker.collect(drift_worker._worker)


def test_the_reference_gives_every_source_an_equal_share(imdb, rotten):
    import numpy as np

    training = pd.concat([imdb.head(4000).assign(source="imdb"), rotten.head(400).assign(source="rt")], ignore_index=True)
    picked = training.iloc[drift_reference._per_source(training, 1000, np.random.default_rng(0))]
    assert picked["source"].value_counts().to_dict() == {"imdb": 600, "rt": 400}  # rt gives all it has, imdb the rest
    assert len(set(picked.index)) == 1000


def test_a_drift_reference_changed_after_it_was_written_is_refused_by_name(settings, imdb):
    """A swapped reference would change every verdict: its digest is recorded when it is written."""
    from sentinel import references
    from sentinel.context import Sentinel
    from sentinel.errors import TamperedModel
    from sentinel.ledger import ModelRow

    app = Sentinel(settings)
    with app.ledger.transaction() as session:
        session.add(
            ModelRow(
                model_name=settings.registered_model, version="1", mlflow_run_id="r", batch_ids=[], artifact_sha256="x", decision="promoted"
            )
        )
    calibration = drift.Calibration(100, 1000, 1000, {"text": 0.5}, {"text": 0.01}, 0.85, 4)
    references.store_reference(app, "1", imdb.head(50), calibration)
    row = app.ledger.model(settings.registered_model, "1")
    frame, _ = references.champion_reference(app, row)
    assert frame["text"].tolist() == imdb.head(50)["text"].tolist()
    assert references.champion_reference(app, row)[0] is frame  # read once while the file stays the same
    references.store_reference(app, "1", imdb.head(60), calibration)  # written again: read again
    row = app.ledger.model(settings.registered_model, "1")
    assert len(references.champion_reference(app, row)[0]) == 60
    imdb.iloc[50:100].to_parquet(row.reference_path, index=False)
    with pytest.raises(TamperedModel, match=r"drift reference of version 1, .*v1.parquet, was changed"):
        references.champion_reference(app, row)
    app.close()


def test_each_check_adds_its_snapshot_without_reading_the_history(imdb, calibrated, tmp_path):
    """The workspace the Evidently UI serves gets one named snapshot per check, and adding one does not
    parse those already there (that made each check slower the longer the history): a malformed old
    snapshot does not stop it."""
    from evidently.ui.workspace import Workspace

    from sentinel import evidently_workspace

    reference, calibration = calibrated
    folder = tmp_path / "evidently"
    drift.measure(imdb.iloc[8000:8300], reference, calibration, None, POLICY, workspace=folder, name="first batch")
    [project] = Workspace(str(folder)).search_project(evidently_workspace.PROJECT)
    malformed = folder / str(project.id) / "snapshots" / "0190a1b2-0000-7000-8000-000000000000.json"
    malformed.write_text("{not json")
    drift.measure(imdb.iloc[8300:8600], reference, calibration, None, POLICY, workspace=folder, name="second batch")
    malformed.unlink()
    workspace = Workspace(str(folder))
    names = sorted(workspace.get_run(project.id, run).name for run in workspace.list_runs(project.id))
    assert names == ["first batch", "second batch"]
    assert len(workspace.get_dashboard(project.id).panels) == 4


def test_a_snapshot_is_written_as_evidentlys_own_workspace_writes_it(imdb, rotten, calibrated, tmp_path):
    from evidently.ui.storage.local.base import LocalState

    from sentinel import evidently_workspace

    reference, _ = calibrated
    # A stable batch, and a shifted one whose text widget adds Evidently's typical words and examples.
    for batch in (imdb.iloc[8600:8800], rotten.iloc[:200]):
        snapshot = drift.run_report(drift.with_descriptors(batch), reference)
        folder = tmp_path / str(batch.index[0])
        ours = evidently_workspace.add_snapshot(folder, drift.DESCRIPTORS, snapshot, "a batch")
        state = LocalState(str(folder))
        project = evidently_workspace.ensure_project(folder, drift.DESCRIPTORS)
        state.write_snapshot(project, "0190a1b2-0000-7000-8000-000000000001", snapshot.to_snapshot_model())
        written = {path.stem: path.read_bytes() for path in (folder / str(project) / "snapshots").glob("*.json")}
        assert written[ours] == written["0190a1b2-0000-7000-8000-000000000001"]
        assert evidently_workspace.snapshot_json(evidently_workspace.load_snapshot(written[ours].decode())).encode() == written[ours]


def test_a_held_value_is_sent_once_and_again_after_the_worker_dropped_it():
    """The parent's account of what the worker keeps follows the worker's own, so a key is sent alone
    only while the worker still holds its value."""
    from collections import OrderedDict

    account, kept, whole = OrderedDict(), OrderedDict(), []
    for key in ["a", "a", "b", "a", "c", "b", "a"]:
        sent = drift_worker._to_send(("texts", drift_worker.Held(key, key.upper())), account)
        whole.append(isinstance(sent[1], drift_worker.Held))
        assert drift_worker._unhold(sent, kept) == ["texts", key.upper()]
        assert list(kept) == list(account) and len(kept) <= drift_worker.HELD
    assert whole == [True, False, True, False, True, True, True]  # "c" dropped "b", and "b" dropped "a"


def test_the_worker_predicts_with_the_champion_it_keeps_and_the_verdict_is_the_same(imdb, rotten, calibrated, own_worker, monkeypatch):
    """In a warm process the worker predicts the batch with a `Scorer` beside the text signal (the model
    is sent with the first check only), and each verdict equals the one predicted here."""
    from sentinel import training
    from sentinel.settings import ModelParams

    reference, calibration = calibrated
    model = training.fit(imdb.iloc[:1500], ModelParams())
    batches = [imdb.iloc[9000:9300], rotten.iloc[300:600]]
    here = [drift.measure(b, reference, calibration, lambda f: model.predict(f[["text"]]), POLICY) for b in batches]
    monkeypatch.setattr(drift.Scorer, "__call__", lambda self, batch: pytest.fail("predicted in this process"))
    scorer = drift.Scorer("v1 test", model)
    assert [drift.measure(b, reference, calibration, scorer, POLICY) for b in batches] == here
    assert here[1].champion_accuracy < here[0].champion_accuracy  # predictions that matter
    assert list(drift_worker._worker.holds) == ["v1 test"]
    drift.start_ahead(batches[0], reference, drift.Scorer("v2 test", model))  # another champion's head start
    assert drift.measure(batches[0], reference, calibration, scorer, POLICY) == here[0]  # not claimed
    assert drift._ahead is None and not drift_worker._worker.in_flight
    drift.start_ahead(batches[1], reference, scorer)  # measured and predicted ahead in the worker
    assert drift.measure(batches[1], reference, calibration, scorer, POLICY) == here[1]  # claimed
    assert drift._ahead is None and not drift_worker._worker.in_flight
