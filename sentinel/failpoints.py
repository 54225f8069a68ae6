"""Named points where a test can make Sentinel die as `kill -9` would, to prove that a crash at any of
them loses nothing. Set SENTINEL_FAILPOINT to a point's name; unset (always, outside tests) a point
costs one dictionary lookup.

The points sit between the writes that cannot be one transaction: files, the ledger and MLflow."""

from __future__ import annotations

import os
import signal

POINTS = {
    "intake.stored": "a batch's copies are written, its ledger row is not",
    "intake.recorded": "the ledger row is committed, the dropped file is still in the drop zone",
    "quarantine.moved": "a rejected file and its reason are in quarantine, the ledger row is not",
    "drift.logged": "the drift check's MLflow run is logged, the verdict is not in the ledger",
    "retrain.registered": "the model version is registered in MLflow, the ledger knows nothing of it",
    "retrain.recorded": "the ledger recorded the run and its decision, no alias has moved",
    "alias.moved": "MLflow moved an alias, the ledger's history does not have the move",
}


def reach(point: str) -> None:
    """Die here, with SIGKILL (no cleanup, no flush), if SENTINEL_FAILPOINT names this point."""
    if os.environ.get("SENTINEL_FAILPOINT") == point:
        assert point in POINTS, point
        os.kill(os.getpid(), signal.SIGKILL)
