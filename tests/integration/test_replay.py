"""The policy runner on a short stream of real reviews: real intake, Evidently, scikit-learn and a local
MLflow store in throwaway projects, with settings small enough for seconds per batch."""

from __future__ import annotations

import pytest

from sentinel import replay
from tests.conftest import make_settings

SMALL = {
    "drift": {"reference_rows": 600, "calibration_draws": 4, "calibration_batch_rows": 200},
    "gate": {"bootstrap_rounds": 200},
}


@pytest.fixture(scope="module")
def short_stream(tmp_path_factory, imdb, rotten) -> replay.Stream:
    folder = tmp_path_factory.mktemp("short-stream")
    stream = folder / "stream"
    stream.mkdir()
    imdb.iloc[:600].to_csv(folder / "reference.csv", index=False)
    imdb.iloc[600:900].to_csv(folder / "holdout-imdb.csv", index=False)
    rotten.iloc[:300].to_csv(folder / "holdout-rotten.csv", index=False)
    for i in range(2):
        imdb.iloc[900 + i * 200 : 1100 + i * 200].to_csv(stream / f"1-imdb-{i}.csv", index=False)
        rotten.iloc[300 + i * 200 : 500 + i * 200].to_csv(stream / f"2-rotten-{i}.csv", index=False)
    (stream / "3-broken.csv").write_text("text;label\ngreat movie;positive\n")
    holdouts = {"imdb": folder / "holdout-imdb.csv", "rotten": folder / "holdout-rotten.csv"}
    return replay.open_stream(stream, folder / "reference.csv", holdouts, [], make_settings(folder / "p"))


def _decisions(summary: dict) -> list[tuple]:
    return [(b["file"], b["status"], b["drift"], b["retrained"], b["decision"], b["champion"], b["accuracy"]) for b in summary["batches"]]


def test_policies_replay_in_child_processes_as_they_do_in_this_one_and_touch_nothing_of_the_project(short_stream, tmp_path):
    project = make_settings(tmp_path / "project", **SMALL)
    seen: list[tuple[str, int]] = []
    result = replay.replay(
        short_stream, [replay.policy("never"), replay.policy("sentinel")], project, lambda n, i, r: seen.append((n, i)), jobs=2
    )

    never, sentinel = result["policies"]["never"], result["policies"]["sentinel"]
    assert result["files"] == ["1-imdb-0.csv", "1-imdb-1.csv", "2-rotten-0.csv", "2-rotten-1.csv", "3-broken.csv"]
    assert sorted(seen) == sorted((name, i) for name in ("never", "sentinel") for i in range(5))  # progress from the children
    assert {b["champion"] for b in never["batches"]} == {"1"} and never["retrains"] == 0
    assert never["final"] == never["first_champion"]["accuracy"]
    assert [b["status"] for b in never["batches"]] == ["accepted"] * 4 + ["quarantined"]
    assert [b["drift"] for b in never["batches"][:4]] == [False, False, True, True]  # the shift is seen, and not acted on
    # it retrains on the shift only: never on a batch without drift
    assert sentinel["retrains"] >= 1 and all(b["drift"] for b in sentinel["batches"][:4] if b["retrained"])
    for b in sentinel["batches"][:4]:
        assert 0 <= b["champion_accuracy_on_batch"] <= 1 and set(b["accuracy"]) == {"imdb", "rotten"}
        assert b["wall_seconds"] > 0 and b["cpu_seconds"] > 0
    # Throwaway projects: nothing of the user's project was written.
    assert not (project.home / "sentinel.db").exists() and not (project.home / "mlflow.db").exists()
    assert not any(project.batches_dir.iterdir())

    again = replay.run_policy(short_stream, replay.policy("sentinel"), project)  # in this process this time
    assert _decisions(again) == _decisions(sentinel)  # deterministic, wherever it runs
    assert again["final"] == sentinel["final"] and again["mean"] == sentinel["mean"]


def test_a_policy_that_fails_in_its_child_is_one_clear_error(short_stream, tmp_path):
    project = make_settings(tmp_path / "project", **SMALL)
    broken = replay.Stream(short_stream.files, tmp_path / "vanished.csv", short_stream.holdouts)
    with pytest.raises(replay.SentinelError, match="replay of policy (never|always) failed: SentinelError: reference file not found"):
        replay.replay(broken, [replay.policy("never"), replay.policy("always")], project, jobs=2)


def test_the_oracle_never_learns_a_known_bad_batch_and_always_learns_everything(tmp_path, imdb, rotten):
    folder = tmp_path / "stream"
    folder.mkdir()
    imdb.iloc[:600].to_csv(tmp_path / "reference.csv", index=False)
    rotten.iloc[:300].to_csv(tmp_path / "holdout.csv", index=False)
    rotten.iloc[300:600].to_csv(folder / "1-rotten.csv", index=False)
    rotten.iloc[600:900].assign(label=lambda f: 1 - f["label"]).to_csv(folder / "2-flipped.csv", index=False)
    stream = replay.open_stream(
        folder, tmp_path / "reference.csv", {"rotten": tmp_path / "holdout.csv"}, ["2-*"], make_settings(tmp_path / "p")
    )
    project = make_settings(tmp_path / "project", **SMALL)
    result = replay.replay(stream, [replay.policy("always"), replay.policy("oracle")], project)
    always, oracle = result["policies"]["always"], result["policies"]["oracle"]
    assert [b["decision"] for b in always["batches"]] == ["promoted", "promoted"]
    assert always["bad_promotions"] == 1 and always["batches"][1]["learned"] == ["2-flipped.csv"]
    assert [b["retrained"] for b in oracle["batches"]] == [True, False] and oracle["bad_promotions"] == 0
    assert oracle["final"]["rotten"] > always["final"]["rotten"]


def test_100_row_batches_of_another_site_are_learned_by_the_second_of_them(tmp_path, imdb, rotten):
    """The champion copes with the new site about as well as with its own (no accuracy lost, so no harmful
    drift), yet learning it gains: the first harmless drift starts a probe, and the held-out rows of
    100-row batches, too few to judge, are joined by the cross-fitted training rows."""
    folder = tmp_path / "stream"
    folder.mkdir()
    rotten.iloc[:1500].to_csv(tmp_path / "reference.csv", index=False)
    imdb.iloc[:500].to_csv(tmp_path / "holdout.csv", index=False)
    for i in range(2):
        rotten.iloc[1500 + i * 100 : 1600 + i * 100].to_csv(folder / f"{i}-rotten.csv", index=False)
    for i in range(2, 5):
        imdb.iloc[500 + i * 100 : 600 + i * 100].to_csv(folder / f"{i}-imdb.csv", index=False)
    stream = replay.open_stream(folder, tmp_path / "reference.csv", {"imdb": tmp_path / "holdout.csv"}, [], make_settings(tmp_path / "p"))
    result = replay.replay(stream, [replay.policy("sentinel")], make_settings(tmp_path / "project", gate=SMALL["gate"]))
    batches = result["policies"]["sentinel"]["batches"]
    assert not any(b["retrained"] for b in batches[:2])  # the stable batches start nothing
    story = [(b["file"], b["drift_status"], b["trigger"], b["decision"], b["decision_reason"]) for b in batches]
    first_new = next((i for i, b in enumerate(batches) if b["promoted"]), None)
    assert first_new is not None and first_new <= 3, story
    assert batches[first_new]["accuracy"]["imdb"] > result["policies"]["sentinel"]["first_champion"]["accuracy"]["imdb"] + 0.03
