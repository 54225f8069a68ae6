"""Intake: turn a dropped CSV into an immutable, validated batch (read by `batch_format`), or quarantine
it with a reason.

Nothing is ever deleted: an accepted file's original bytes are kept beside its normalised parquet copy,
and a rejected file is moved to `data/quarantine/` with a `.reason.json` a person can act on.
"""

from __future__ import annotations

import datetime as dt
import errno
import functools
import hashlib
import json
import os
import shutil
import stat
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd
from sqlalchemy.exc import IntegrityError

from sentinel import failpoints
from sentinel.batch_format import (
    SHOWN,
    Problem,
    RejectedFile,
    batch_source,
    read_batch,
    shown,
    spreadsheet_safe,
)
from sentinel.ledger import BatchDigest, BatchRow, Ledger
from sentinel.settings import Settings


@dataclass(frozen=True)
class IntakeOutcome:
    """What happened to one dropped file."""

    file: str
    status: str  # accepted | quarantined | duplicate | waiting | error (left in the drop zone, tried again)
    batch_id: str | None = None
    rows: int = 0
    sha256: str | None = None
    reason: dict | None = None
    path: str | None = None  # where the file is now


def new_batch_id(now: dt.datetime | None = None) -> str:
    """A sortable batch id: the UTC time of arrival and a random suffix."""
    now = now or dt.datetime.now(dt.timezone.utc)
    return f"{now:%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"


def wait_until_settled(path: Path, settle_seconds: float, timeout: float = 30.0) -> bool:
    """True once the file's size and mtime have not changed for `settle_seconds`: a writer that is still
    appending keeps moving them, so a half-written file is never read."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            info = path.lstat()
        except FileNotFoundError:
            return False
        current = (info.st_size, info.st_mtime_ns)
        if time.time() - info.st_mtime >= settle_seconds and (last is None or current == last):
            return True  # unchanged for settle_seconds already: no writer is appending
        last = current
        time.sleep(min(0.2, settle_seconds / 2 or 0.05))
    return False


def display_name(path: Path) -> str:
    """A file's name as the ledger and reasons record it: a name that is not valid UTF-8 (undecodable
    bytes arrive as surrogates, which no database accepts) or holds control characters is escaped."""
    name = path.name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return shown(name, limit=200)


def write_set_aside(set_aside: pd.DataFrame, source_name: str, batch_id: str, sha256: str, settings: Settings) -> Path:
    """The rows intake set aside from an accepted file: a CSV of their own in data/quarantine/ (each with
    its line in the original file and its reason, every cell spreadsheet-safe) and its reason beside it."""
    settings.quarantine_dir.mkdir(parents=True, exist_ok=True)
    stem = source_name.rsplit(".", 1)[0] if "." in source_name else source_name
    target = _quarantine_target(settings.quarantine_dir, f"{stem}.set-aside.csv", batch_id)
    safe = set_aside.astype(object).where(set_aside.notna(), "").map(spreadsheet_safe)
    safe.columns = [spreadsheet_safe(c) for c in safe.columns]
    write_atomically(target, lambda path: safe.to_csv(path, index=False))
    kinds = set_aside["reason"].value_counts().to_dict()
    reason = {
        "file": target.name,
        "from_file": source_name,
        "batch_id": batch_id,
        "sha256": sha256,
        "message": f"{len(set_aside)} row(s) of {source_name} set aside: " + ", ".join(f"{n} {kind}" for kind, n in kinds.items()),
        "fix": "the rest of the file was accepted; fix these rows and drop them as a new file to learn them too",
        "rows": [int(line) for line in set_aside["line"].dropna().head(SHOWN)],
        "set_aside_rows": len(set_aside),
        "quarantined_at": dt.datetime.now(dt.timezone.utc).isoformat(),
    }
    write_atomically(Path(f"{target}{REASON_SUFFIX}"), lambda path: path.write_text(json.dumps(reason, indent=2)))
    return target


REASON_SUFFIX = ".reason.json"
# Bytes in one file name on Linux file systems, less what a quarantined name may gain: its reason's suffix
# and the temporary name the reason is written under first.
NAME_BUDGET = 255 - len(REASON_SUFFIX) - len("..tmp")


def _quarantine_target(folder: Path, name: str, batch_id: str) -> Path:
    """Where a rejected file goes: its own name if neither it nor its reason file would replace anything
    there and the reason file's name still fits, else `<stem>-<batch id>.<ext>` with the stem shortened."""
    target = folder / name
    if len(name.encode()) <= NAME_BUDGET and not (target.exists() or target.is_symlink() or Path(f"{target}{REASON_SUFFIX}").exists()):
        return target
    stem, dot, ext = name.partition(".")
    tail = f"-{batch_id}{dot}{ext}"
    if len(tail.encode()) > NAME_BUDGET // 2:
        tail = f"-{batch_id}"  # an absurd extension is not worth keeping
    budget = NAME_BUDGET - len(tail.encode())
    return folder / (stem.encode()[:budget].decode(errors="ignore") + tail)


def quarantine(path: Path, problem: Problem, settings: Settings, batch_id: str, sha256: str | None) -> Path:
    """Move the file (never delete it) and write its reason beside it. A symlink is moved as a link,
    never followed; a directory or FIFO is moved as it is. If the reason cannot be written (a full disk),
    the file goes back where it was: a quarantined file always has its reason."""
    settings.quarantine_dir.mkdir(parents=True, exist_ok=True)
    target = _quarantine_target(settings.quarantine_dir, display_name(path), batch_id)  # a printable name
    reason = {
        "file": display_name(path),
        "batch_id": batch_id,
        "sha256": sha256,
        **asdict(problem),
        "quarantined_at": dt.datetime.now(dt.timezone.utc).isoformat(),
    }
    target = move_no_clobber(path, target)
    try:
        write_atomically(Path(f"{target}{REASON_SUFFIX}"), lambda p: p.write_text(json.dumps(reason, indent=2)))
    except BaseException:
        move_no_clobber(target, path)
        raise
    return target


def release(path: Path, quarantined: Path) -> Path:
    """Undo `quarantine` (the ledger could not record it): the file goes back, its reason is dropped.
    A file that arrived under the same name meanwhile is kept: this one goes back under a free name.
    Returns where it went."""
    target = move_no_clobber(quarantined, path)
    Path(f"{quarantined}{REASON_SUFFIX}").unlink(missing_ok=True)
    return target


def free_name(target: Path) -> Path:
    """`target`, or `<stem>.<n><suffix>` with the first n that names nothing yet."""
    candidate, n = target, 1
    while candidate.exists() or candidate.is_symlink():
        candidate, n = target.with_name(f"{target.stem}.{n}{target.suffix}"), n + 1
    return candidate


def move_no_clobber(source: Path, target: Path) -> Path:
    """Move without ever replacing anything: a file that is at `target` already (one dropped meanwhile
    under the same name) is kept, and the source goes to a free name beside it. Returns where it went.

    A hard link then an unlink is the rename that refuses an existing target (os.replace overwrites);
    a directory, or a drop zone on another file system, is moved by rename or copy after a check."""
    while True:
        target = free_name(target)
        try:
            os.link(source, target, follow_symlinks=False)
        except FileExistsError:
            continue  # taken between the check and the link: try the next free name
        except OSError as error:
            if error.errno not in (errno.EPERM, errno.EXDEV, errno.EMLINK):
                raise
            _move_across(source, target)
            return target
        try:
            os.unlink(source)
        except OSError:
            os.unlink(target)  # the source cannot leave (a read-only folder): one copy, where it was
            raise
        return target


def _move_across(source: Path, target: Path) -> None:
    """Rename a directory; across file systems, copy then remove the source, and remove a partial copy
    if the copy fails, so the source is the one whole version left."""
    try:
        os.rename(source, target)
    except OSError as error:
        if error.errno != errno.EXDEV:
            raise
        try:
            shutil.move(source, target)  # links are recreated, not followed
        except BaseException:
            if not (source.exists() or source.is_symlink()):
                raise  # the source is gone: the copy is all there is, keep it
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target, ignore_errors=True)
            else:
                target.unlink(missing_ok=True)
            raise


def write_atomically(target: Path, write) -> None:
    """Write to a temporary name, sync, then rename: a full disk or a kill leaves no half-written file."""
    temporary = target.with_name(f".{target.name}.tmp")
    try:
        write(temporary)
        with open(temporary, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def store(batch_id: str, frame: pd.DataFrame, raw: bytes, settings: Settings) -> tuple[Path, Path]:
    """Write a batch's normalised rows and its original bytes, each atomically; the ledger row comes
    after, so the ledger never names a batch that is not on disk."""
    settings.batches_dir.mkdir(parents=True, exist_ok=True)
    stored = settings.batches_dir / f"{batch_id}.parquet"
    original = settings.batches_dir / f"{batch_id}.csv"
    try:
        write_atomically(stored, lambda p: frame.to_parquet(p, index=False))
        write_atomically(original, lambda p: p.write_bytes(raw))
    except BaseException:
        stored.unlink(missing_ok=True)  # complete, but its twin is not: neither stays
        raise
    return stored, original


def ingest(path: Path, settings: Settings, ledger: Ledger) -> IntakeOutcome:
    """Validate, store and record one dropped file. Safe to call twice on the same bytes."""
    batch_id = new_batch_id()
    policy = settings.intake
    name = display_name(path)
    opened = _open_regular(path, policy.max_bytes)
    if isinstance(opened, Problem):
        return _record_rejection(path, opened, settings, ledger, batch_id, None, "quarantined")
    raw, info = opened
    sha256 = hashlib.sha256(raw).hexdigest()
    try:
        parsed = read_batch(raw, policy)
    except RejectedFile as refusal:
        return _record_rejection(path, refusal.problem, settings, ledger, batch_id, sha256, "quarantined")
    frame = parsed.frame

    known = _accepted_with_digest(ledger, sha256)
    if known:
        earlier = ledger.batch(known)
        written = dt.datetime.fromtimestamp(info.st_mtime, dt.timezone.utc)
        received = earlier.received_at if earlier.received_at.tzinfo else earlier.received_at.replace(tzinfo=dt.timezone.utc)
        if earlier.file_name == name and written <= received and Path(earlier.stored_path).with_suffix(".csv").exists():
            # An intake stopped between its commit and the file's removal (a kill, a crash): the bytes are
            # stored already, so finishing the move is all that is left. Not a duplicate drop.
            path.unlink(missing_ok=True)
            return IntakeOutcome(name, "accepted", known, earlier.rows, sha256, path=earlier.stored_path)
        return _record_duplicate(path, settings, ledger, batch_id, sha256, known)

    stored, original = store(batch_id, frame, raw, settings)
    failpoints.reach("intake.stored")
    try:
        with ledger.transaction() as session:
            session.add(
                BatchRow(
                    batch_id=batch_id,
                    file_name=name,
                    sha256=sha256,
                    rows=len(frame),
                    status="accepted",
                    stored_path=str(stored),
                    source=batch_source(frame),
                    rows_set_aside=len(parsed.set_aside),
                )
            )
            session.flush()
            session.add(BatchDigest(sha256=sha256, batch_id=batch_id))
    except IntegrityError:
        # Only a clash on the content digest means another intake accepted the same bytes between our
        # check and our commit; any other constraint that fails is an error, and the file stays put.
        holder = _accepted_with_digest(ledger, sha256)
        _discard_unrecorded(ledger, batch_id, stored, original)
        if holder is None or holder == batch_id:
            raise
        return _record_duplicate(path, settings, ledger, batch_id, sha256, holder)
    except BaseException:
        _discard_unrecorded(ledger, batch_id, stored, original)
        raise
    failpoints.reach("intake.recorded")
    if len(parsed.set_aside):
        # After the commit: a reason whose batch the ledger lacks would read as an unrecorded quarantine.
        # A crash before this line loses nothing, since the original bytes are stored whole.
        aside = write_set_aside(parsed.set_aside, name, batch_id, sha256, settings)
        with ledger.transaction() as session:
            session.get(BatchRow, batch_id).set_aside_path = str(aside)
    path.unlink(missing_ok=True)  # its bytes live on as data/batches/<batch_id>.csv
    return IntakeOutcome(name, "accepted", batch_id, len(frame), sha256, path=str(stored))


def _open_regular(path: Path, max_bytes: int) -> tuple[bytes, os.stat_result] | Problem:
    """The file's bytes and status, read through one handle opened without following a link: what was
    checked is what is read, even if the path is swapped meanwhile. A Problem when it must not be read."""
    name = display_name(path)
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as error:
        if error.errno != errno.ELOOP:
            raise
        return Problem(f"{name} is a symbolic link, not a regular file; it was not followed or read", "drop the CSV file itself")
    try:
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode):
            kind = "directory" if stat.S_ISDIR(info.st_mode) else "special file"
            return Problem(f"{name} is a {kind}, not a regular file; it was not read", "drop the CSV file itself")
        if info.st_size > max_bytes:
            return Problem(f"the file is {info.st_size:,} bytes; the limit is {max_bytes:,}", "split it into smaller batches")
        with os.fdopen(os.dup(descriptor), "rb") as handle:
            raw = handle.read(max_bytes + 1)
    finally:
        os.close(descriptor)
    if len(raw) > max_bytes:  # it grew after the check
        return Problem(f"the file is over {max_bytes:,} bytes, the limit", "split it into smaller batches")
    return raw, info


def _discard_unrecorded(ledger: Ledger, batch_id: str, *copies: Path) -> None:
    """The ledger refused a batch (a full disk, a lost connection); the file is still in the drop zone.
    Drop the batch's copies unless the commit went through after all; when the ledger cannot even be
    asked, keep them for `sentinel doctor --repair` to set aside."""
    try:
        recorded = ledger.batch(batch_id) is not None
    except Exception:
        return
    if not recorded:
        for copy in copies:
            copy.unlink(missing_ok=True)


def _accepted_with_digest(ledger: Ledger, sha256: str) -> str | None:
    with ledger.transaction() as session:
        digest = session.get(BatchDigest, sha256)
        return digest.batch_id if digest else None


def _record_duplicate(path: Path, settings: Settings, ledger: Ledger, batch_id: str, sha256: str, original: str | None) -> IntakeOutcome:
    problem = Problem(
        f"the same bytes were already accepted as batch {original}", "nothing to do: the batch is learned once", values=[str(original)]
    )
    return _record_rejection(path, problem, settings, ledger, batch_id, sha256, "duplicate", duplicate_of=original)


def _record_rejection(
    path: Path,
    problem: Problem,
    settings: Settings,
    ledger: Ledger,
    batch_id: str,
    sha256: str | None,
    status: str,
    duplicate_of: str | None = None,
) -> IntakeOutcome:
    target = quarantine(path, problem, settings, batch_id, sha256)
    failpoints.reach("quarantine.moved")
    reason = asdict(problem)
    try:
        with ledger.transaction() as session:
            session.add(
                BatchRow(
                    batch_id=batch_id,
                    file_name=display_name(path),
                    sha256=sha256 or "",
                    status=status,
                    reason=reason,
                    stored_path=str(target),
                    drift_status="none",
                    duplicate_of=duplicate_of,
                )
            )
    except BaseException:
        release(path, target)  # tried again later, from the drop zone, rather than set aside unrecorded
        raise
    return IntakeOutcome(display_name(path), status, batch_id, 0, sha256, reason, str(target))


FIXES = {
    errno.ENOSPC: "free space on the disk that holds {folder}; the file stays in the drop zone and is taken in again",
    errno.EDQUOT: "raise the disk quota for {folder}; the file stays in the drop zone and is taken in again",
    errno.EROFS: "mount {folder} read-write; the file stays in the drop zone and is taken in again",
    errno.EACCES: "let the user running Sentinel write to {folder}; the file stays in the drop zone",
    errno.EPERM: "let the user running Sentinel write to {folder}; the file stays in the drop zone",
}


def unwritable(settings: Settings) -> dict | None:
    """Why intake cannot move files out of the drop zone or store them, if it cannot: checked before a
    file is read, so a read-only drop zone leaves every file as it is rather than half-taken."""
    for folder in (settings.incoming_dir, settings.batches_dir, settings.quarantine_dir):
        folder = folder if folder.exists() else folder.parent  # created at the first use
        if not os.access(folder, os.W_OK):
            code = errno.EROFS if os.statvfs(folder).f_flag & os.ST_RDONLY else errno.EACCES
            state = "read-only" if code == errno.EROFS else "not writable"
            return {"message": f"{folder} is {state}: intake is paused", "fix": FIXES[code].format(folder=folder)}
    return None


def failure(error: Exception, settings: Settings) -> dict:
    """A reason for a file whose intake failed through no fault of its own."""
    if isinstance(error, OSError) and error.errno in FIXES:
        folder = Path(error.filename).parent if error.filename else settings.home
        return {"message": f"could not take the file in: {error.strerror} ({folder})", "fix": FIXES[error.errno].format(folder=folder)}
    return {
        "message": f"could not take the file in: {type(error).__name__}: {shown(str(error), 300)}",
        "fix": "see the log; the file stays in the drop zone and is taken in again",
    }


def pending_files(settings: Settings) -> list[Path]:
    """Files waiting in the drop zone, oldest first; hidden and temporary files are a writer's business."""
    if not settings.incoming_dir.exists():
        return []
    entries = []
    for path in settings.incoming_dir.iterdir():
        if path.name.startswith(".") or path.name.endswith((".tmp", ".part", ".crdownload")):
            continue
        try:
            entries.append((path.lstat().st_mtime, path.name, path))
        except FileNotFoundError:
            continue  # taken by another watcher meanwhile
    return [path for _, _, path in sorted(entries)]


def load_batch_frame(stored_path: str) -> pd.DataFrame:
    """A stored batch's rows (text, label and the optional columns)."""
    return read_parquet(stored_path)


def read_parquet(source) -> pd.DataFrame:
    """A parquet file's rows, read through the C library's allocator. Arrow's default pool (mimalloc)
    keeps the pages it has freed: reading the 22 stored batches of a 25,000-row retrain left 106 MB
    more in the process, 43 MB with the system allocator (measured), in every process that reads them."""
    _use_the_system_allocator()
    return pd.read_parquet(source)


@functools.cache
def _use_the_system_allocator() -> None:
    import pyarrow

    pyarrow.set_memory_pool(pyarrow.system_memory_pool())
