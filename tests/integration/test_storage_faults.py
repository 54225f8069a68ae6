"""A full disk and a read-only drop zone, made real with small tmpfs and read-only bind mounts: intake
says what is wrong and how to fix it, leaves every file where it was, half-writes nothing, and takes the
files in once the storage is back."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from sentinel import taking_in
from sentinel.context import Sentinel
from tests.conftest import make_settings


def _mount(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["mount", *args], capture_output=True, text=True)


@pytest.fixture
def mounts(tmp_path):
    """Mount and remount helpers; everything mounted is unmounted afterwards. Mounting needs CAP_SYS_ADMIN,
    which this project's machines (and CI) have: a machine without it is a failure, not a skip, so these
    faults are only ever proven by running."""
    mounted: list[Path] = []

    def run(*args: str, at: Path) -> None:
        result = _mount(*args, str(at))
        assert result.returncode == 0, f"mount {' '.join(args)} failed (does this machine grant CAP_SYS_ADMIN?): {result.stderr}"
        if at not in mounted:
            mounted.append(at)

    yield run
    for point in reversed(mounted):
        subprocess.run(["umount", "-l", str(point)], check=False)


@pytest.fixture
def app(tmp_path):
    settings = make_settings(tmp_path / "project", intake={"settle_seconds": 0.05, "min_rows": 20})
    sentinel = Sentinel(settings)
    yield sentinel
    sentinel.close()


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.name.endswith(".tmp"))


def test_a_full_disk_leaves_the_file_in_the_drop_zone_and_stores_nothing_half(app, mounts, imdb):
    settings = app.settings
    mounts("-t", "tmpfs", "-o", "size=200k", "tmpfs", at=settings.batches_dir)
    big = settings.incoming_dir / "big.csv"
    imdb.iloc[:400].to_csv(big, index=False)  # about 500 KB: neither copy fits
    small = settings.incoming_dir / "small.csv"
    imdb.iloc[400:430].to_csv(small, index=False)
    big_bytes = big.read_bytes()

    outcomes = {o.file: o for o in taking_in.take_in(app)}
    assert outcomes["big.csv"].status == "error"
    assert "No space left on device" in outcomes["big.csv"].reason["message"]
    assert "free space" in outcomes["big.csv"].reason["fix"]
    assert outcomes["small.csv"].status == "accepted"  # the next file is not held up
    assert big.read_bytes() == big_bytes
    assert [b.file_name for b in app.ledger.batches()] == ["small.csv"]
    batch_files = sorted(p.name for p in settings.batches_dir.iterdir())
    assert batch_files == sorted(f"{outcomes['small.csv'].batch_id}{ext}" for ext in (".csv", ".parquet")) and not leftovers(
        settings.batches_dir
    )

    mounts("-o", "remount,size=20m", "tmpfs", at=settings.batches_dir)
    [again] = taking_in.take_in(app)
    assert again.status == "accepted" and not big.exists()
    assert (settings.batches_dir / f"{again.batch_id}.csv").read_bytes() == big_bytes


def test_a_full_quarantine_disk_keeps_the_rejected_file_whole_in_the_drop_zone(app, mounts):
    settings = app.settings
    mounts("-t", "tmpfs", "-o", "size=64k", "tmpfs", at=settings.quarantine_dir)  # also another file system
    bad = settings.incoming_dir / "semicolons.csv"
    bad.write_text("text;label\n" + "a review that will not fit;1\n" * 8000)  # about 230 KB
    raw = bad.read_bytes()

    [outcome] = taking_in.take_in(app)
    assert outcome.status == "error" and "No space left on device" in outcome.reason["message"]
    assert bad.read_bytes() == raw and list(settings.quarantine_dir.iterdir()) == []  # the partial copy is gone
    assert app.ledger.batches() == []

    mounts("-o", "remount,size=20m", "tmpfs", at=settings.quarantine_dir)
    [outcome] = taking_in.take_in(app)
    assert outcome.status == "quarantined" and "semicolons" in outcome.reason["message"]
    assert (settings.quarantine_dir / "semicolons.csv").read_bytes() == raw and not bad.exists()


def test_a_read_only_drop_zone_pauses_intake_without_reading_a_file(app, mounts, imdb):
    settings = app.settings
    imdb.iloc[:50].to_csv(settings.incoming_dir / "good.csv", index=False)
    (settings.incoming_dir / "bad.csv").write_text("text;label\nx;1\n")
    before = {p.name: p.read_bytes() for p in settings.incoming_dir.iterdir()}
    mounts("--bind", str(settings.incoming_dir), at=settings.incoming_dir)
    mounts("-o", "remount,bind,ro", str(settings.incoming_dir), at=settings.incoming_dir)

    outcomes = taking_in.take_in(app)
    assert {o.file: o.status for o in outcomes} == {"good.csv": "error", "bad.csv": "error"}
    assert all("read-only" in o.reason["message"] and "read-write" in o.reason["fix"] for o in outcomes)
    assert {p.name: p.read_bytes() for p in settings.incoming_dir.iterdir()} == before
    assert app.ledger.batches() == [] and list(settings.quarantine_dir.iterdir()) == []

    mounts("-o", "remount,bind,rw", str(settings.incoming_dir), at=settings.incoming_dir)
    assert {o.file: o.status for o in taking_in.take_in(app)} == {"good.csv": "accepted", "bad.csv": "quarantined"}
