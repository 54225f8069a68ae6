"""Drift references: what each champion is measured against. A version's reference is sampled from
the rows it was trained on, with the calibrated no-drift noise, written whole to `data/reference/` and
recorded in the ledger, so a promotion resets what "normal" is."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from sentinel import intake
from sentinel.context import Sentinel
from sentinel.errors import TamperedModel
from sentinel.ledger import ModelRow

if TYPE_CHECKING:
    from sentinel import drift


# Evidently and scikit-learn are imported where a reference is built or used, not with this module:
# a person's `promote`, `rollback` or `doctor` reads references but rarely builds one.


def champion_reference(app: Sentinel, champion: ModelRow) -> tuple[pd.DataFrame, drift.Calibration]:
    """The reference rows and calibration a drift check measures a batch against."""
    from sentinel import drift

    # A champion whose promotion a crash cut short, or whose alias a person moved in the MLflow UI,
    # may have no reference yet: build it once rather than fail every drift check.
    champion = ensure_reference(app, champion)
    return _read_reference(Path(champion.reference_path), champion.reference_sha256, champion.version), drift.Calibration(
        **champion.calibration
    )


# The reference last read, by its file's identity: every drift check of a long-lived watcher measures
# against the same file, and reading, hashing and decoding it took 4 % of the watcher's time per check
# under load (profiled). A file written again, or changed, has another inode, size or modification time.
_last_read: tuple[tuple, pd.DataFrame] | None = None


def _read_reference(path: Path, sha256: str | None, version: str) -> pd.DataFrame:
    global _last_read
    stat = path.stat()
    identity = (str(path), stat.st_ino, stat.st_size, stat.st_mtime_ns, sha256)
    if _last_read is not None and _last_read[0] == identity:
        return _last_read[1]
    raw = path.read_bytes()
    if sha256 and hashlib.sha256(raw).hexdigest() != sha256:
        raise TamperedModel(
            f"the drift reference of version {version}, {path}, was changed after it was written; refusing to measure "
            "against it. Move it aside and the next check rebuilds it from the version's training rows"
        )
    frame = intake.read_parquet(io.BytesIO(raw))
    _last_read = (identity, frame)
    return frame


def ensure_reference(app: Sentinel, row: ModelRow, expected: tuple[float, int] | None = None) -> ModelRow:
    """A version whose retrain kept no drift reference (one registered before challengers kept theirs),
    or whose promotion stopped before its reference was written, has none: build it from its own
    training rows. `expected`: its accuracy on unseen rows of the world as it is now and how many rows
    that was measured on (a promotion by shadow evidence knows it), which replaces the expected accuracy
    of a reference kept at its retrain; else its accuracy on the held-out rows of what it learned.
    Returns the row as stored."""
    if row.reference_path and Path(row.reference_path).is_file():
        return row if expected is None else _expect(app, row, expected)
    from sentinel import drift_reference, training

    frames = {b: intake.load_batch_frame(app.ledger.batch(b).stored_path) for b in row.batch_ids}
    data = training.assemble(frames, {}, app.settings.gate.holdout_share, 10**9)
    if expected is None:
        expected = (training.evaluate(app.load_model(row), data.holdout_reference).accuracy, len(data.holdout_reference))
    rows = drift_reference.reference_columns(data.train)
    reference, calibration = app.memo(
        "reference", drift_reference.build_reference, rows, expected[0], app.settings.drift, app.settings.model.seed
    )
    store_reference(app, row.version, reference, dataclasses.replace(calibration, expected_rows=int(expected[1])))
    return app.ledger.model(row.model_name, row.version)


def _expect(app: Sentinel, row: ModelRow, expected: tuple[float, int]) -> ModelRow:
    """The stored calibration with this expected accuracy: a challenger's reference was kept at its
    retrain, and its shadow evidence measured it since on more unseen rows."""
    with app.ledger.transaction() as session:
        stored = session.get(ModelRow, (row.model_name, row.version))
        stored.calibration = dict(stored.calibration or {}) | {"expected_accuracy": float(expected[0]), "expected_rows": int(expected[1])}
    return app.ledger.model(row.model_name, row.version)


def store_reference(app: Sentinel, version: str, reference: pd.DataFrame, calibration: drift.Calibration) -> None:
    """A version's drift reference on disk (whole or not at all: a retrain and a drift check may both
    write it) and in the ledger."""
    path = app.settings.reference_dir / f"v{version}.parquet"
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    reference.to_parquet(partial, index=False)
    digest = hashlib.sha256(partial.read_bytes()).hexdigest()
    partial.replace(path)
    with app.ledger.transaction() as session:
        stored = session.get(ModelRow, (app.settings.registered_model, version))
        stored.reference_path, stored.reference_sha256, stored.calibration = str(path), digest, calibration.__dict__
