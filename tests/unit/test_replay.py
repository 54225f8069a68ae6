"""`sentinel replay` without running a policy: policies, streams, holdouts, the throwaway settings, the
summary and the outputs (the runner itself runs in tests/integration/test_replay.py and the e2e tier)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from sentinel import replay, replay_report
from sentinel.errors import SentinelError
from tests.conftest import make_settings


def _csv(path: Path, rows: list[tuple[str, int]], header: str = "text,label") -> Path:
    path.write_text(header + "\n" + "".join(f'"{t}",{y}\n' for t, y in rows))
    return path


def test_built_in_policies_say_when_they_retrain_promote_and_learn():
    assert replay.policy("sentinel") == replay.Policy("sentinel")
    assert (replay.policy("never").retrains, replay.policy("never").promotes) == ("never", "gate")
    always, oracle = replay.policy("always"), replay.policy("oracle")
    assert (always.retrains, always.promotes, always.learns) == ("every-batch", "always", "accepted")
    assert (oracle.retrains, oracle.promotes, oracle.learns) == ("every-batch", "always", "known-good")


def test_a_settings_file_is_a_policy_named_by_its_stem(tmp_path):
    path = tmp_path / "strict-gate.toml"
    path.write_text("[gate]\nmargin = 0.02\n")
    assert replay.policy(str(path)) == replay.Policy("strict-gate", {"gate": {"margin": 0.02}})


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.toml", None, "unknown policy"),
        ("broken.toml", "[gate\nmargin = ", "not valid TOML"),
        ("never.toml", "[gate]\nmargin = 0.1\n", "named like the built-in"),
    ],
)
def test_a_bad_policy_is_one_clear_error(tmp_path, name, content, message):
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    with pytest.raises(SentinelError, match=message):
        replay.policy(str(path))


def test_a_policy_file_with_an_unknown_or_state_setting_fails_before_any_work(tmp_path):
    base = make_settings(tmp_path / "project")
    typo = tmp_path / "typo.toml"
    typo.write_text("[gate]\nmargn = 0.1\n")
    with pytest.raises(Exception, match="margn"):
        replay.workspace_settings(base, replay.policy(str(typo)), tmp_path / "ws")
    elsewhere = tmp_path / "elsewhere.toml"
    elsewhere.write_text('ledger_url = "sqlite:////tmp/x.db"\n')
    with pytest.raises(SentinelError, match="cannot be replayed"):
        replay.workspace_settings(base, replay.policy(str(elsewhere)), tmp_path / "ws")


def test_a_workspace_keeps_the_settings_and_moves_all_state_into_its_folder(tmp_path):
    base = make_settings(tmp_path / "project", gate={"margin": 0.03}, prefect_api_url="http://127.0.0.1:4200/api")
    settings = replay.workspace_settings(base, replay.Policy("p", {"drift": {"z": 5.0}}), tmp_path / "ws")
    assert settings.home == (tmp_path / "ws").resolve()
    assert settings.ledger_url == f"sqlite:///{settings.home / 'sentinel.db'}"
    assert settings.mlflow_tracking_uri == f"sqlite:///{settings.home / 'mlflow.db'}"
    assert settings.prefect_api_url == ""  # no events from a replay
    assert (settings.gate.margin, settings.drift.z) == (0.03, 5.0)
    assert settings.intake.settle_seconds == 0.0


def test_holdouts_are_named_and_each_name_once():
    assert replay.parse_holdouts(["imdb=a.csv", "b/rt.csv"]) == {"imdb": Path("a.csv"), "rt": Path("b/rt.csv")}
    with pytest.raises(SentinelError, match="twice"):
        replay.parse_holdouts(["x=a.csv", "x=b.csv"])
    with pytest.raises(SentinelError, match="NAME=FILE"):
        replay.parse_holdouts(["=a.csv"])


def test_a_stream_is_its_batch_files_in_name_order_with_the_known_bad_ones(tmp_path):
    folder = tmp_path / "stream"
    folder.mkdir()
    for name in ("b.csv", "a.csv", "notes.md"):
        _csv(folder / name, [("fine", 1), ("bad", 0)])
    (folder / "known-bad.txt").write_text("# flipped upstream\nb.csv\n")
    reference = _csv(tmp_path / "ref.csv", [("ok", 1)])
    holdout = _csv(tmp_path / "h.csv", [("good film", 1), ("awful", 0)], header="review,sentiment")
    stream = replay.open_stream(folder, reference, {"h": holdout}, ["z*.csv"], make_settings(tmp_path / "p"))
    assert [f.name for f in stream.files] == ["a.csv", "b.csv"]
    assert stream.is_bad("b.csv") and stream.is_bad("z1.csv") and not stream.is_bad("a.csv")
    assert list(stream.holdouts["h"].columns) == ["text", "label"]  # read like any batch: the columns' other names work


def test_a_bad_stream_reference_or_holdout_is_one_clear_error(tmp_path):
    settings = make_settings(tmp_path / "p")
    folder = tmp_path / "stream"
    reference = _csv(tmp_path / "ref.csv", [("ok", 1)])
    holdout = _csv(tmp_path / "h.csv", [("good", 1)])
    with pytest.raises(SentinelError, match="stream folder not found"):
        replay.open_stream(folder, reference, {"h": holdout}, [], settings)
    folder.mkdir()
    with pytest.raises(SentinelError, match="no batch files"):
        replay.open_stream(folder, reference, {"h": holdout}, [], settings)
    _csv(folder / "a.csv", [("x", 1)])
    with pytest.raises(SentinelError, match="reference file not found"):
        replay.open_stream(folder, tmp_path / "nope.csv", {"h": holdout}, [], settings)
    with pytest.raises(SentinelError, match="at least one --holdout"):
        replay.open_stream(folder, reference, {}, [], settings)
    with pytest.raises(SentinelError, match="holdout 'h': file not found"):
        replay.open_stream(folder, reference, {"h": tmp_path / "missing.csv"}, [], settings)
    (tmp_path / "nolabel.csv").write_text("text\nhello\n")
    with pytest.raises(SentinelError, match="holdout 'h' .nolabel.csv. is not usable"):
        replay.open_stream(folder, reference, {"h": tmp_path / "nolabel.csv"}, [], settings)


def _record(file: str, accuracy: float, retrained=False, decision=None, bad=False, drift=False) -> dict:
    return {
        "file": file,
        "status": "accepted",
        "drift": drift,
        "fired": ["text"] if drift else [],
        "retrained": retrained,
        "decision": decision,
        "decision_reason": "because" if decision else None,
        "promoted": decision == "promoted",
        "bad_promoted": bad,
        "champion": "2" if decision == "promoted" else "1",
        "accuracy": {"h": accuracy},
        "wall_seconds": 1.0,
        "cpu_seconds": 1.5,
    }


def test_the_summary_counts_decisions_and_averages_the_curve_from_the_first_champion():
    records = [
        _record("a.csv", 0.7),
        _record("b.csv", 0.8, True, "promoted", bad=True, drift=True),
        _record("c.csv", 0.9, True, "challenger"),
    ]
    summary = replay.summarise(replay.Policy("p"), {"accuracy": {"h": 0.6}}, records, wall=3.0, cpu=4.5)
    assert summary["final"] == {"h": 0.9}
    assert summary["mean"] == {"h": 0.75}  # (0.6 + 0.7 + 0.8 + 0.9) / 4
    assert (summary["retrains"], summary["promotions"], summary["bad_promotions"], summary["drift_detected"]) == (2, 1, 1, 1)
    assert summary["compute_seconds"] == 4.5


def _result(file_name: str) -> dict:
    records = [_record(file_name, 0.7), _record("b.csv", 0.8, True, "promoted")]
    policies = {name: replay.summarise(replay.Policy(name), {"accuracy": {"h": 0.6}}, records, 1.0, 1.0) for name in ("sentinel", "never")}
    return {
        "stream": "/s",
        "reference": "/r.csv",
        "files": [file_name, "b.csv"],
        "holdouts": ["h"],
        "known_bad": [],
        "seed": 42,
        "policies": policies,
    }


def test_the_outputs_hold_what_the_issue_promises_and_escape_what_came_from_a_batch(tmp_path):
    hostile = "<img src=x onerror=alert(1)>$x$=1+1.csv"
    paths = replay_report.write(_result(hostile), tmp_path / "out")
    assert {p.name for p in paths.values()} == {"replay.json", "replay.csv", "replay.png", "replay.html"}
    document = json.loads(paths["json"].read_text())
    assert document["policies"]["never"]["final"]["h"] == 0.8
    assert document["policies"]["sentinel"]["batches"][1]["decision"] == "promoted"
    page = paths["html"].read_text()
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "<script" not in page.lower() and "@import" not in page  # no code, nothing fetched
    assert not any(f'{attribute}="http' in page or f"{attribute}='http" in page for attribute in ("src", "href", "xlink:href"))
    assert "<svg" in page
    rows = list(csv.DictReader(paths["csv"].open()))
    assert len(rows) == 4 and rows[0]["policy"] == "sentinel" and rows[0]["accuracy_h"] == "0.7"
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_file_name_that_starts_like_a_formula_is_neutralised_in_the_csv(tmp_path):
    paths = replay_report.write(_result("=cmd.csv"), tmp_path / "out")
    rows = list(csv.DictReader(paths["csv"].open()))
    assert rows[0]["file"] == "'=cmd.csv"


def test_the_command_refuses_a_missing_stream_in_one_line(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "sentinel.cli", "replay", str(tmp_path / "nope"), "--reference", "r.csv", "--holdout", "h=h.csv"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"SENTINEL_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [f"error: stream folder not found: {tmp_path / 'nope'}"]


def test_the_comparison_is_logged_to_mlflow_as_a_parent_run_with_one_child_per_policy(tmp_path):
    from mlflow import MlflowClient

    result = _result("a.csv")
    paths = replay_report.write(result, tmp_path / "out")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    parent_id = replay_report.log_to_mlflow(result, paths, uri)
    client = MlflowClient(uri)
    parent = client.get_run(parent_id)
    assert {a.path for a in client.list_artifacts(parent_id)} == {"replay.json", "replay.csv", "replay.png", "replay.html"}
    children = client.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent_id}'")
    assert sorted(r.info.run_name for r in children) == ["never", "sentinel"]
    child = children[0]
    assert child.data.metrics["final_h"] == 0.8 and child.data.metrics["promotions"] == 1
    assert [m.value for m in client.get_metric_history(child.info.run_id, "accuracy_h")] == [0.7, 0.8]


def test_the_comparison_goes_to_mlflow_only_when_a_tracking_uri_was_set(tmp_path, monkeypatch):
    monkeypatch.delenv("SENTINEL_MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert not replay.tracking_uri_given(tmp_path)
    (tmp_path / "sentinel.toml").write_text('mlflow_tracking_uri = "http://127.0.0.1:5000"\n')
    assert replay.tracking_uri_given(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert replay.tracking_uri_given(tmp_path / "elsewhere")
