"""Intake: every way a CSV goes wrong is quarantined with a reason; good files become batches once."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from sentinel import batch_format, intake
from sentinel.ledger import Ledger
from sentinel.settings import IntakePolicy

POLICY = IntakePolicy(min_rows=4)


def rows(n: int = 6, label=lambda i: i % 2) -> str:
    return "text,label\n" + "".join(f"review number {i} was fine,{label(i)}\n" for i in range(n))


@pytest.mark.parametrize(
    ("raw", "message", "column"),
    [
        (b"", "empty", None),
        (b"   \n\n", "empty", None),
        (b"text,label\n", "header but no rows", None),
        (b"text;label\na;1\nb;0\nc;1\nd;0\n", "separated by semicolons", None),
        (b"text\tlabel\na\t1\nb\t0\n", "separated by tabs", None),
        (b"title,score\na,1\nb,0\n", "missing required column(s) text", "text"),
        (b"text,score\na,1\nb,0\n", "missing required column(s) label", "label"),
        (b"review,content,label\na,b,1\nc,d,0\n", "several that could be it: review, content", "text"),
        (rows().replace(",1\n", ",maybe\n", 1).encode(), "not 0/1 or negative/positive", "label"),
        (rows().replace("review number 2 was fine", "  ", 1).encode(), "empty text", "text"),
        ("text,label\ncafé,1\n".encode("latin-1"), "not UTF-8", None),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00IHDR", "binary", None),
        (rows(10, label=lambda i: 1).encode(), "one-class", "label"),
        (b'text,label\n"unterminated,1\nmore,0\n', "cannot be parsed", None),
        (b"text,label\nwaytoolong,1\nb,0\nc,1\nd,0\n", "longer than", "text"),
        (b"text,label,text\na,1,b\n", "names column(s) text twice", "text"),
    ],
)
def test_bad_files_are_refused_with_an_actionable_reason(raw, message, column):
    policy = POLICY.model_copy(update={"max_text_chars": 5}) if message == "longer than" else POLICY
    with pytest.raises(batch_format.RejectedFile) as caught:
        batch_format.parse_batch(raw, policy)
    problem = caught.value.problem
    assert message in problem.message
    assert problem.fix
    assert problem.column == column


def test_reason_names_the_offending_rows_and_values():
    raw = rows(8).replace("review number 3 was fine,1", "review number 3 was fine,neutral").encode()
    with pytest.raises(batch_format.RejectedFile) as caught:
        batch_format.parse_batch(raw, POLICY)
    assert caught.value.problem.rows == [4]  # data row 4 (the header is not counted)
    assert caught.value.problem.values == ["neutral"]


def test_labels_are_normalised_and_extra_columns_kept():
    raw = ("\ufeffText,Label,source\n" + "".join(f"r{i},{'POSITIVE' if i % 2 else 'negative'},imdb\n" for i in range(6))).encode("utf-8")
    frame = batch_format.parse_batch(raw, POLICY)
    assert list(frame.columns) == ["text", "label", "source"]
    assert frame["label"].tolist() == [0, 1, 0, 1, 0, 1]


def test_quoted_commas_and_newlines_survive():
    raw = b'text,label\n"great, really\nmoving",1\n"bad, ""awful""",0\nok,1\nmeh,0\n'
    frame = batch_format.parse_batch(raw, POLICY)
    assert frame["text"].iloc[0] == "great, really\nmoving"
    assert frame["text"].iloc[1] == 'bad, "awful"'


@pytest.fixture
def ledger(settings):
    return Ledger(settings.ledger_url)


def drop(settings, name: str, content: str | bytes) -> Path:
    path = settings.incoming_dir / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def test_accepted_file_is_stored_and_recorded(settings, ledger):
    settings.intake.min_rows = 4
    path = drop(settings, "good.csv", rows(6))
    outcome = intake.ingest(path, settings, ledger)
    assert outcome.status == "accepted" and outcome.rows == 6
    assert not path.exists()
    stored = Path(outcome.path)
    assert pd.read_parquet(stored)["label"].tolist() == [0, 1, 0, 1, 0, 1]
    assert stored.with_suffix(".csv").read_text() == rows(6)  # the original bytes are kept
    assert ledger.batch(outcome.batch_id).sha256 == outcome.sha256


def test_the_same_bytes_twice_are_a_duplicate_not_a_second_batch(settings, ledger):
    settings.intake.min_rows = 4
    first = intake.ingest(drop(settings, "a.csv", rows(6)), settings, ledger)
    second = intake.ingest(drop(settings, "a-again.csv", rows(6)), settings, ledger)
    assert second.status == "duplicate"
    assert first.batch_id in second.reason["message"]
    assert [b.batch_id for b in ledger.batches(status="accepted")] == [first.batch_id]
    assert (settings.quarantine_dir / "a-again.csv").exists()


def test_a_file_left_behind_by_an_interrupted_intake_is_finished_not_called_a_duplicate(settings, ledger):
    """Killed between the ledger commit and the file's removal: the next sweep sees the same file again."""
    settings.intake.min_rows = 4
    path = drop(settings, "a.csv", rows(6))
    kept = path.read_bytes()
    first = intake.ingest(path, settings, ledger)
    path.write_bytes(kept)  # as if the removal never happened...
    os.utime(path, (0, 0))  # ...the file is older than the batch it became
    again = intake.ingest(path, settings, ledger)
    assert (again.status, again.batch_id) == ("accepted", first.batch_id)
    assert not path.exists() and len(ledger.batches()) == 1
    # the same name with the same bytes dropped later is a real duplicate
    again_later = intake.ingest(drop(settings, "a.csv", rows(6)), settings, ledger)
    assert again_later.status == "duplicate"


def test_rejected_file_is_moved_with_its_reason_never_deleted(settings, ledger):
    content = "text,label\nfine,1\n"
    outcome = intake.ingest(drop(settings, "tiny batch.csv", content), settings, ledger)
    assert outcome.status == "quarantined"
    moved = settings.quarantine_dir / "tiny batch.csv"
    assert moved.read_text() == content
    reason = json.loads(Path(f"{moved}.reason.json").read_text())
    assert "one-class" in reason["message"] and reason["fix"] and reason["file"] == "tiny batch.csv"
    assert ledger.batch(outcome.batch_id).status == "quarantined"


def test_same_name_quarantined_twice_keeps_both(settings, ledger):
    intake.ingest(drop(settings, "x.csv", "nope"), settings, ledger)
    intake.ingest(drop(settings, "x.csv", "nope again"), settings, ledger)
    assert len([p for p in settings.quarantine_dir.iterdir() if not p.name.endswith(".reason.json")]) == 2


def test_symlink_is_moved_not_followed(settings, ledger, tmp_path):
    secret = tmp_path / "outside.csv"
    secret.write_text(rows(60))
    link = settings.incoming_dir / "link.csv"
    link.symlink_to(secret)
    outcome = intake.ingest(link, settings, ledger)
    assert outcome.status == "quarantined" and "symbolic link" in outcome.reason["message"]
    assert secret.exists() and (settings.quarantine_dir / "link.csv").is_symlink()


def test_a_path_swapped_for_a_link_while_it_is_taken_in_never_reads_the_link(settings, ledger, tmp_path):
    """The check and the read go through one handle: a path that another process keeps turning into a
    symbolic link to another file and back never brings that file's rows in."""
    settings.intake.min_rows = 4
    secret = tmp_path / "outside.csv"
    secret.write_text(rows(8).replace("review", "secret"))
    path = settings.incoming_dir / "swap.csv"
    swapper = (
        "import os, sys\n"
        "path, secret, good = sys.argv[1:]\n"
        "link, regular = path + '.link', path + '.regular'\n"
        "while True:\n"
        "    os.symlink(secret, link); os.replace(link, path)\n"
        "    open(regular, 'w').write(good); os.replace(regular, path)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", swapper, str(path), str(secret), rows(6)])
    secret_digest = hashlib.sha256(secret.read_bytes()).hexdigest()
    read = []
    try:
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            try:
                outcome = intake.ingest(path, settings, ledger)
            except FileNotFoundError:
                continue
            read.append(outcome.sha256)
    finally:
        child.kill()
        child.wait()
    assert len(read) > 50 and None in read  # the path was taken in many times, and seen as a link too
    assert secret_digest not in read


def test_an_integrity_error_other_than_a_digest_clash_is_an_error_not_a_duplicate(settings, ledger):
    """A constraint the database enforces on something else (here a trigger that refuses the row) is
    not another intake's copy of the same bytes: it surfaces, and the file stays in the drop zone."""
    from sqlalchemy import text
    from sqlalchemy.exc import IntegrityError

    settings.intake.min_rows = 4
    with ledger.engine.begin() as connection:
        connection.execute(
            text("CREATE TRIGGER refuse BEFORE INSERT ON batches WHEN NEW.status = 'accepted' BEGIN SELECT RAISE(ABORT, 'refused'); END")
        )
    path = drop(settings, "a.csv", rows(6))
    with pytest.raises(IntegrityError, match="refused"):
        intake.ingest(path, settings, ledger)
    assert path.read_text() == rows(6)
    assert ledger.batches() == [] and not list(settings.quarantine_dir.iterdir())
    assert not list(settings.batches_dir.glob("*"))


def test_oversized_file_is_refused_unread(settings, ledger):
    settings.intake.max_bytes = 100
    outcome = intake.ingest(drop(settings, "big.csv", rows(60)), settings, ledger)
    assert outcome.status == "quarantined" and "the limit is 100" in outcome.reason["message"]


def test_a_file_still_being_written_is_not_read(tmp_path):
    path = tmp_path / "growing.csv"
    path.write_text("text,label\n")
    stop = threading.Event()

    def writer():
        with open(path, "a") as handle:
            while not stop.is_set():
                handle.write("more,1\n")
                handle.flush()
                time.sleep(0.05)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        assert intake.wait_until_settled(path, settle_seconds=0.3, timeout=1.0) is False
    finally:
        stop.set()
        thread.join()
    assert intake.wait_until_settled(path, settle_seconds=0.3, timeout=3.0) is True


def test_pending_files_skips_hidden_and_partial_files(settings):
    for name in ("a.csv", ".b.csv.tmp", "c.csv.part", ".gitkeep"):
        (settings.incoming_dir / name).write_text("x")
    os.utime(settings.incoming_dir / "a.csv")
    assert [p.name for p in intake.pending_files(settings)] == ["a.csv"]
