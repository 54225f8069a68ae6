"""The Markdown a person reads on a flow run's page: built from the ledger's records, links to MLflow when
a server shows them, and a user's file name rendered as text, never as markup."""

from __future__ import annotations

import math

from sentinel.explain import Links, decision_markdown, drift_markdown
from sentinel.ledger import BatchRow, DriftCheckRow, TrainingRunRow

SIGNALS = [
    {"name": "text", "score": 0.83, "threshold": 0.6, "method": "domain classifier ROC AUC", "drifted": True},
    {"name": "label", "score": 0.01, "threshold": 0.1, "method": "Jensen-Shannon", "drifted": False},
]


def batch(name: str = "rotten-a.csv", status: str = "detected") -> BatchRow:
    return BatchRow(batch_id="20261203-101010-abcdef", file_name=name, drift_status=status, suspect_labels=False, rows=1500)


def check(**extra) -> DriftCheckRow:
    trigger = {"rule": "any", "fired": True, "why": "drift in text", "accuracy": {"accuracy": 0.71, "rows": 1500, "expected": 0.88}}
    fields = {
        "reference_version": "1",
        "signals": SIGNALS,
        "trigger": trigger,
        "mlflow_run_id": "0123456789abcdef",
        "report_path": "r.html",
    }
    return DriftCheckRow(**(fields | extra))


def test_a_drift_verdict_shows_each_signal_against_its_threshold_and_links_its_run():
    text = drift_markdown([batch()], check(), Links("http://127.0.0.1:5000", "review-sentiment"))
    assert text.startswith("### Drift check of `rotten-a.csv` against champion v1")
    assert "**drift: a retrain is due** (rule `any`: drift in text; retrain due: yes)" in text
    assert "| text | domain classifier ROC AUC | 0.8300 | 0.6000 | **yes** |" in text
    assert "| label | Jensen-Shannon | 0.0100 | 0.1000 | no |" in text
    assert "accuracy on these 1500 rows: 0.7100 (expected 0.8800)" in text
    assert "[MLflow run 01234567](http://127.0.0.1:5000/#/runs/0123456789abcdef)" in text


def test_a_kept_snapshot_says_how_to_see_its_page():
    links = Links(None, "m")
    kept = check(report_path="reports/drift/drift-b1.json", batch_id="20261203-101010-abcdef")
    assert "report `reports/drift/drift-b1.json` (as a page: `sentinel report --batch 20261203-101010-abcdef`)" in drift_markdown(
        [batch()], kept, links
    )
    assert "sentinel report" not in drift_markdown([batch()], check(), links)  # an HTML report is the page


def test_a_file_name_is_text_and_without_a_server_the_ids_stand_in_for_links():
    hostile = "x` [click](http://evil) <script>.csv"
    text = drift_markdown(
        [batch(hostile, "clear")], check(trigger={"rule": "any", "fired": False, "why": "no signal drifted"}), Links(None, "m")
    )
    title = text.splitlines()[0]
    assert title.count("`") == 2 and "<script>" in title.split("`")[1]  # inside one code span: shown, not rendered
    assert "**no drift**" in text and "MLflow run `0123456789abcdef`" in text and "http" not in text.replace("http://evil", "")


def test_a_pool_and_a_shadow_look_are_told():
    shadow = {
        "version": "3",
        "challenger": 0.9,
        "champion": 0.8,
        "rows": 400,
        "e_value": 25.0,
        "verdict": "promote",
        "why": "evidence 25 >= 20",
    }
    pool = {"members": ["a", "b"], "rows": 300, "complete": False}
    text = drift_markdown([batch(), batch("b.csv")], check(shadow=shadow, pool=pool), Links(None, "m"))
    assert "one pool of 2 small batches (300 rows, measured short of the minimum rows" in text
    assert "challenger v3 scored 0.9000 against the champion's 0.8000 on 400 rows (e-value 25): promote" in text


def test_a_decision_shows_each_slice_its_interval_and_the_version_it_registered():
    slices = [
        {
            "name": "shifted",
            "test": "superiority",
            "rows": 300,
            "champion": 0.7,
            "challenger": 0.8,
            "delta": 0.1,
            "ci_low": 0.05,
            "ci_high": 0.15,
            "verdict": "better",
        },
        {
            "name": "reference",
            "test": "non-inferiority",
            "rows": 0,
            "champion": math.nan,
            "challenger": math.nan,
            "delta": math.nan,
            "ci_low": math.nan,
            "ci_high": math.nan,
            "verdict": "too-few-rows",
        },
    ]
    comparison = {
        "metric": "accuracy",
        "rule": "better where it shifted",
        "deciding_slice": "shifted",
        "slices": slices,
        "e_value": math.nan,
        "cause": "drift",
        "champion_version": "1",
    }
    run = TrainingRunRow(
        run_name="retrain-a+b",
        batch_ids=["a", "b"],
        trained_rows=4000,
        model_version="2",
        decision="promoted",
        reason="better",
        mlflow_run_id="feed",
        comparison=comparison,
    )
    text = decision_markdown(run, Links("http://127.0.0.1:5000", "review-sentiment"))
    assert text.startswith("### retrain-a+b: promoted")
    assert "cause: drift; champion compared: v1" in text
    assert "| shifted | superiority | 300 | 0.7000 | 0.8000 | +0.1000 [+0.0500, +0.1500] | better |" in text
    assert "| reference | non-inferiority | 0 | – | – | – | too-few-rows |" in text
    assert "Anytime-valid" not in text  # no evidence measured, none claimed
    assert "[version 2 of review-sentiment](http://127.0.0.1:5000/#/models/review-sentiment/versions/2)" in text
