"""Malformed and hostile input: every file of the corpus under tests/corpus/ and every odd kind of
directory entry is quarantined with its reason, byte for byte, or set aside without being followed;
property-based tests show the CSV intake never fails in any other way and never loses a review."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from sentinel import batch_format, intake
from sentinel.ledger import Ledger
from sentinel.settings import DEFAULT_LABELS, IntakePolicy
from tests.conftest import make_settings

CORPUS = Path(__file__).parents[1] / "corpus"
HOSTILE = json.loads((CORPUS / "hostile.json").read_text())


@pytest.fixture
def ledger(settings):
    ledger = Ledger(settings.ledger_url)
    yield ledger
    ledger.dispose()


def quarantined_copy(settings, outcome) -> Path:
    path = Path(outcome.path)
    assert path.parent == settings.quarantine_dir
    return path


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_every_corpus_file_is_quarantined_whole_with_its_reason_or_kept_as_text(name, settings, ledger):
    raw = (CORPUS / "hostile" / name).read_bytes()
    dropped = settings.incoming_dir / name
    dropped.write_bytes(raw)
    outcome = intake.ingest(dropped, settings, ledger)
    if HOSTILE[name]["expect"] == "accepted":  # genuine text, whatever its first characters
        assert outcome.status == "accepted", (HOSTILE[name]["why"], outcome.reason)
        stored = pd.read_parquet(outcome.path)
        original = pd.read_csv(io.BytesIO(raw), dtype=str, keep_default_na=False)
        assert stored["text"].tolist() == original.iloc[:, 0].tolist()  # stored exactly as written
        return
    assert outcome.status == "quarantined", HOSTILE[name]["why"]
    assert HOSTILE[name]["expect"] in outcome.reason["message"]
    assert outcome.reason["fix"]
    kept = quarantined_copy(settings, outcome)
    assert kept.read_bytes() == raw and not dropped.exists()
    reason = json.loads(Path(f"{kept}{intake.REASON_SUFFIX}").read_text())
    assert reason["message"] == outcome.reason["message"] and reason["file"] == name
    assert ledger.batch(outcome.batch_id).status == "quarantined"
    for value in reason["values"]:  # a reason shown in a terminal carries no control characters
        assert value.isprintable()


def test_the_corpus_is_big_enough_and_documented():
    assert len(HOSTILE) >= 30
    assert {path.name for path in (CORPUS / "hostile").iterdir()} == set(HOSTILE)
    assert all(case["why"] and case["expect"] for case in HOSTILE.values())


def test_a_symlink_out_of_the_drop_zone_is_moved_as_a_link_never_followed(settings, ledger, tmp_path):
    secret = tmp_path / "secret.csv"
    secret.write_text("text,label\n" + "private review,1\n" * 60)
    before = secret.read_bytes()
    for name, target in (("to-file.csv", secret), ("to-dir.csv", tmp_path), ("dangling.csv", tmp_path / "nowhere")):
        (settings.incoming_dir / name).symlink_to(target)
        outcome = intake.ingest(settings.incoming_dir / name, settings, ledger)
        assert (
            outcome.status == "quarantined" and "symbolic link" in outcome.reason["message"] and "not followed" in outcome.reason["message"]
        )
        moved = quarantined_copy(settings, outcome)
        assert moved.is_symlink() and os.readlink(moved) == str(target)
    assert secret.read_bytes() == before and ledger.batches()[0].sha256 == ""  # never read


def test_a_directory_and_a_fifo_are_set_aside_unread(settings, ledger):
    folder = settings.incoming_dir / "folder.csv"
    folder.mkdir()
    (folder / "inside.csv").write_text("text,label\nx,1\n")
    fifo = settings.incoming_dir / "pipe.csv"
    os.mkfifo(fifo)  # reading it would block forever
    for path, kind in ((folder, "directory"), (fifo, "special file")):
        outcome = intake.ingest(path, settings, ledger)
        assert outcome.status == "quarantined" and kind in outcome.reason["message"]
        assert not path.exists()
    assert (settings.quarantine_dir / "folder.csv" / "inside.csv").exists()
    assert (settings.quarantine_dir / "pipe.csv").is_fifo()


@pytest.mark.parametrize(
    "name",
    [
        "a..b.csv",
        "..csv.csv",  # starts with a dot: a hidden file, which the drop zone leaves to its writer
        "with spaces and (parens).csv",
        "revue été 🎬.csv",
        "right-to-left \u202egnp.csv",
        "line\nbreak.csv",
        "[bold red]loud[reset] [link=http:example.invalid]x.csv",
        "x" * 240 + ".csv",
    ],
)
def test_odd_names_stay_inside_quarantine_and_are_recorded_printably(name, settings, ledger):
    path = settings.incoming_dir / name
    path.write_text("text,label\nnot enough rows,1\n")
    if name.startswith("."):
        assert path not in intake.pending_files(settings)
        return
    outcome = intake.ingest(path, settings, ledger)
    kept = quarantined_copy(settings, outcome)
    assert kept.read_text().startswith("text,label") and Path(f"{kept}{intake.REASON_SUFFIX}").exists()
    assert ledger.batch(outcome.batch_id).file_name.isprintable()


def test_a_name_that_is_not_utf8_is_recorded_escaped(settings, ledger):
    raw_name = os.fsencode(settings.incoming_dir) + b"/caf\xe9.csv"  # Latin-1 bytes in a file name
    with open(raw_name, "wb") as handle:
        handle.write(b"text,label\nshort,1\n")
    [path] = intake.pending_files(settings)
    outcome = intake.ingest(path, settings, ledger)
    assert outcome.status == "quarantined"
    assert ledger.batch(outcome.batch_id).file_name == "caf\\xe9.csv"
    assert (settings.quarantine_dir / "caf\\xe9.csv").read_bytes() == b"text,label\nshort,1\n"  # a printable name there too


def test_a_long_name_quarantined_twice_keeps_both_and_both_reasons(settings, ledger):
    name = "é" * 120 + ".csv"  # 244 bytes: the second copy's name must be shortened to fit
    for content in ("text,label\nfirst,1\n", "text,label\nsecond,1\n"):
        (settings.incoming_dir / name).write_text(content)
        intake.ingest(settings.incoming_dir / name, settings, ledger)
    kept = sorted(p for p in settings.quarantine_dir.iterdir() if not p.name.endswith(intake.REASON_SUFFIX))
    assert sorted(p.read_text().splitlines()[1] for p in kept) == ["first,1", "second,1"]
    assert all(Path(f"{p}{intake.REASON_SUFFIX}").exists() for p in kept)


def test_a_file_named_like_a_reason_never_replaces_one(settings, ledger):
    first = settings.incoming_dir / "x.csv.reason.json"
    first.write_text("not a csv at all")
    intake.ingest(first, settings, ledger)
    (settings.incoming_dir / "x.csv").write_text("text,label\nshort,1\n")
    outcome = intake.ingest(settings.incoming_dir / "x.csv", settings, ledger)
    assert (settings.quarantine_dir / "x.csv.reason.json").read_text() == "not a csv at all"
    assert json.loads(Path(f"{outcome.path}{intake.REASON_SUFFIX}").read_text())["file"] == "x.csv"


# ---- property-based tests of the CSV intake ------------------------------------------------------
POLICY = IntakePolicy(min_rows=1, min_class_share=0.0)
texts = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1, max_size=200).filter(str.strip)


def as_csv(rows: list[tuple[str, object]], newline: str = "\r\n", quoting: int = csv.QUOTE_MINIMAL) -> bytes:
    """Rows as a CSV writer writes them (it quotes a field holding a character of `newline`)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator=newline, quoting=quoting)
    writer.writerow(["text", "label"])
    writer.writerows(rows)
    return buffer.getvalue().encode()


@given(st.binary(max_size=2000))
@hypothesis_settings(max_examples=400, deadline=None)
def test_any_bytes_are_a_batch_or_a_reason_never_a_crash(raw):
    try:
        frame = batch_format.parse_batch(raw, POLICY)
    except batch_format.RejectedFile as rejected:
        assert rejected.problem.message and rejected.problem.fix
    else:
        assert list(frame.columns[:2]) == ["text", "label"] and set(frame["label"]) <= {0, 1}


@given(
    st.lists(
        st.tuples(
            texts | st.sampled_from(["=1+1", "-Facts (I): good", "+1 for the score", "@director", "=) loved it"]),
            st.sampled_from(["0", "1", " positive", "NEGATIVE ", "pos", "False"]),
        ),
        min_size=1,
        max_size=30,
    )
)
@hypothesis_settings(max_examples=200, deadline=None)
def test_every_review_written_as_csv_comes_back_exactly(rows):
    frame = batch_format.parse_batch(as_csv(rows), POLICY)
    assert frame["text"].tolist() == [text for text, _ in rows]
    assert frame["label"].tolist() == [DEFAULT_LABELS[label.strip().lower()] for _, label in rows]


@given(
    st.lists(st.tuples(texts, st.sampled_from(["0", "1"])), min_size=1, max_size=10), st.sampled_from(["\n", "\r\n", "\r"]), st.booleans()
)
@hypothesis_settings(max_examples=100, deadline=None)
def test_line_endings_and_a_byte_order_mark_change_nothing(rows, newline, bom):
    raw = as_csv(rows, newline, csv.QUOTE_ALL)
    frame = batch_format.parse_batch(b"\xef\xbb\xbf" + raw if bom else raw, POLICY)
    assert frame["text"].tolist() == [text for text, _ in rows]  # a line ending inside quotes is part of the review


@given(raw=st.binary(max_size=600))
@hypothesis_settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_intake_of_any_file_keeps_its_bytes_somewhere(raw, tmp_path_factory):
    settings = make_settings(tmp_path_factory.mktemp("any"), intake={"min_rows": 1, "min_class_share": 0.0})
    ledger = Ledger(settings.ledger_url)
    try:
        dropped = settings.incoming_dir / "any.csv"
        dropped.write_bytes(raw)
        outcome = intake.ingest(dropped, settings, ledger)
        assert not dropped.exists()
        kept = settings.batches_dir / f"{outcome.batch_id}.csv" if outcome.status == "accepted" else Path(outcome.path)
        assert kept.read_bytes() == raw
        if outcome.status == "accepted":
            assert len(pd.read_parquet(outcome.path)) == outcome.rows
    finally:
        ledger.dispose()
        shutil.rmtree(settings.home)
