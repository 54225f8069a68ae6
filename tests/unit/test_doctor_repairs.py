"""doctor --repair on real files: it holds the lock intake holds, and never replaces a file."""

from __future__ import annotations

import json
import threading
import time

from sentinel import doctor, intake, locks
from sentinel.context import Sentinel


def unrecorded_quarantine(settings, name: str, content: str) -> None:
    """A file quarantined by an intake that stopped before its ledger row (its batch is unknown)."""
    settings.quarantine_dir.mkdir(parents=True, exist_ok=True)
    (settings.quarantine_dir / name).write_text(content)
    reason = {"file": name, "batch_id": "20260101-000000-abcdef", "message": "m", "fix": "f"}
    (settings.quarantine_dir / f"{name}{intake.REASON_SUFFIX}").write_text(json.dumps(reason))


def test_a_file_put_back_never_replaces_one_dropped_under_its_name_meanwhile(settings):
    app = Sentinel(settings)
    unrecorded_quarantine(settings, "reviews.csv", "the quarantined bytes")
    (settings.incoming_dir / "reviews.csv").write_text("a newer file a person dropped")
    done = doctor.release_unrecorded_quarantine(app)
    assert (settings.incoming_dir / "reviews.csv").read_text() == "a newer file a person dropped"
    assert (settings.incoming_dir / "reviews.1.csv").read_text() == "the quarantined bytes"
    assert done == [f"moved reviews.csv back to {settings.incoming_dir / 'reviews.1.csv'}"]
    app.close()


def test_file_repairs_wait_for_intake_to_finish(settings):
    """While intake holds its lock (here: this test, as a running intake would), the repair moves nothing."""
    app = Sentinel(settings)
    unrecorded_quarantine(settings, "half-done.csv", "bytes")
    repair = dict((check.__name__, mend) for check, mend in doctor.CHECKS)["quarantine_in_ledger"]
    done: list[str] = []
    with locks.held(settings, "intake") as holding:
        assert holding
        worker = threading.Thread(target=lambda: done.extend(repair(app)))
        worker.start()
        time.sleep(1.5)
        assert (settings.quarantine_dir / "half-done.csv").exists() and not done
    worker.join(timeout=30)
    assert (settings.incoming_dir / "half-done.csv").read_text() == "bytes" and done
    app.close()
