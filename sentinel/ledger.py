"""The ledger: Sentinel's audit trail in SQL (SQLite by default, PostgreSQL by URL).

It links one batch → its drift check → the retrain it caused → the model version → every alias move.
MLflow holds runs and models; the ledger holds what MLflow cannot answer: which batch caused what, and
which version was champion when.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Float, ForeignKey, Integer, String, Text, create_engine, event, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker


def utcnow() -> dt.datetime:
    """Now, timezone-aware, in UTC."""
    return dt.datetime.now(dt.timezone.utc)


def aware(moment: dt.datetime) -> dt.datetime:
    """A stored time as UTC-aware: SQLite gives it back without its zone."""
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)


# The kinds of alias move the ledger records (AliasMoveRow.kind).
MOVE, ROLLBACK = "move", "rollback"

# A batch's drift status once it was checked: a retrain is due, drift the trigger let pass, no drift.
CHECKED = ("detected", "harmless", "clear")
DRIFTED = ("detected", "harmless")  # checked batches whose drift was found, whether it harmed or not


class Base(DeclarativeBase):
    """The ledger's declarative base: JSON for dicts and lists, timezone-aware datetimes."""

    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON, dt.datetime: DateTime(timezone=True)}


class BatchRow(Base):
    """One file that arrived: accepted as a batch, quarantined, or a duplicate, and what became of it."""

    __tablename__ = "batches"

    batch_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    file_name: Mapped[str] = mapped_column(String(512))
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    rows: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16))  # accepted | quarantined | duplicate
    reason: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    stored_path: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    received_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    drift_status: Mapped[str] = mapped_column(String(16), default="pending")  # pending|detected|harmless|clear|failed|none
    suspect_labels: Mapped[bool] = mapped_column(Boolean, default=False)
    trained_in: Mapped[int | None] = mapped_column(ForeignKey("training_runs.id"), nullable=True)
    duplicate_of: Mapped[str | None] = mapped_column(String(64), nullable=True)
    source: Mapped[str | None] = mapped_column(String(256), nullable=True)  # small batches pool per source
    rows_set_aside: Mapped[int] = mapped_column(Integer, default=0)  # bad rows intake kept out of the batch
    set_aside_path: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    excluded: Mapped[str | None] = mapped_column(Text, nullable=True)  # why no retrain learns it, until a person requeues it
    # A drift check that raised: how often, the last error, and when it may be tried again. After
    # `drift.check_attempts` tries the batch is parked (drift_status "failed") until a person requeues it.
    check_attempts: Mapped[int] = mapped_column(Integer, default=0)
    check_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    retry_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)


class BatchDigest(Base):
    """One row per accepted content digest: the primary key makes 'the same bytes twice' a constraint
    the database enforces, so two intake processes racing on one file cannot both accept it."""

    __tablename__ = "batch_digests"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    batch_id: Mapped[str] = mapped_column(ForeignKey("batches.batch_id"))


class DriftCheckRow(Base):
    """One drift check of a batch against a reference version, with every signal."""

    __tablename__ = "drift_checks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    batch_id: Mapped[str] = mapped_column(ForeignKey("batches.batch_id"), index=True)
    reference_version: Mapped[str] = mapped_column(String(32))
    detected: Mapped[bool] = mapped_column(Boolean)
    signals: Mapped[list[Any]] = mapped_column(JSON)
    report_path: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    mlflow_run_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    checked_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    pool: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)  # small batches measured together
    trigger: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)  # the retrain rule, whether it fired, why
    shadow: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)  # the live challenger scored on this batch


class TrainingRunRow(Base):
    """One retrain (or the bootstrap): the batches it learned, its MLflow run, and the gate's decision."""

    __tablename__ = "training_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_name: Mapped[str] = mapped_column(String(256))
    mlflow_run_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    batch_ids: Mapped[list[Any]] = mapped_column(JSON)  # the new batches this run learned
    trained_rows: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    model_version: Mapped[str | None] = mapped_column(String(32), nullable=True)
    decision: Mapped[str | None] = mapped_column(String(16), nullable=True)  # promoted|challenger|rejected
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    comparison: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)


class TuningRow(Base):
    """One model search (`sentinel tune`, a bootstrap, a retrain after large drift): every candidate with
    its cross-validated scores, and the configuration chosen, which later retrains use."""

    __tablename__ = "tunings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    mlflow_run_id: Mapped[str | None] = mapped_column(String(64), nullable=True)  # the parent run; one child per candidate
    cause: Mapped[str] = mapped_column(String(32))  # tune | bootstrap | drift
    rows: Mapped[int] = mapped_column(Integer)  # the training rows the candidates were scored on
    metric: Mapped[str] = mapped_column(String(32))
    chosen: Mapped[dict[str, Any]] = mapped_column(JSON)  # ModelParams of the winner
    candidates: Mapped[list[Any]] = mapped_column(JSON)  # name, params, scores, mean, std, seconds of each
    seconds: Mapped[float] = mapped_column(Float)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ModelRow(Base):
    """A registered model version as Sentinel knows it: what it learned and how to measure drift for it."""

    __tablename__ = "models"

    model_name: Mapped[str] = mapped_column(String(256), primary_key=True)
    version: Mapped[str] = mapped_column(String(32), primary_key=True)
    mlflow_run_id: Mapped[str] = mapped_column(String(64))
    training_run_id: Mapped[int | None] = mapped_column(ForeignKey("training_runs.id"), nullable=True)
    batch_ids: Mapped[list[Any]] = mapped_column(JSON)  # every batch whose training rows it learned
    artifact_sha256: Mapped[str] = mapped_column(String(64))
    manifest: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)  # sha256 of every artifact file, by path
    reference_path: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    reference_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)  # of the file as written
    calibration: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    decision: Mapped[str] = mapped_column(String(16))  # promoted | challenger | rejected | retired
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    evidence: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)  # a challenger's e-processes (gate.Evidence)


class AliasMoveRow(Base):
    """One move of an alias from one version to another, by Sentinel or a person, and why."""

    __tablename__ = "alias_moves"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_name: Mapped[str] = mapped_column(String(256))
    alias: Mapped[str] = mapped_column(String(32))
    from_version: Mapped[str | None] = mapped_column(String(32), nullable=True)
    to_version: Mapped[str | None] = mapped_column(String(32), nullable=True)
    actor: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(Text)
    moved_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # What the move was, for the code that reads the history back (rollback pops, every other move
    # pushes): a reason is a person's prose and may say anything.
    kind: Mapped[str | None] = mapped_column(String(16), nullable=True, default=MOVE)


class DriftReportRow(Base):
    """One scheduled drift report: which batches it covered, so the next one starts where it stopped."""

    __tablename__ = "drift_reports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    batch_ids: Mapped[list[Any]] = mapped_column(JSON)
    rows: Mapped[int] = mapped_column(Integer)
    reference_version: Mapped[str] = mapped_column(String(32))
    html_path: Mapped[str] = mapped_column(String(1024))
    mlflow_run_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    snapshot_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    made_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    # WAL lets the watcher read while a retrain writes; the busy timeout turns lock contention into waiting.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


# Columns whose rows from before the column existed are filled from what those rows held. The kind of
# an alias move was once told only by its reason's prefix, which Sentinel itself wrote for a rollback.
BACKFILLS = {
    ("alias_moves", "kind"): f"UPDATE alias_moves SET kind = CASE WHEN reason LIKE 'rollback: %' THEN '{ROLLBACK}' ELSE '{MOVE}' END",
}


def _add_missing_columns(engine) -> None:
    """Columns added since a ledger was created, added to it: `create_all` makes missing tables only.
    Every column added so far is nullable or has a constant default, so ADD COLUMN is the whole
    migration; a change that needs more than that brings a migration tool."""
    from sqlalchemy import inspect, text

    inspector = inspect(engine)
    with engine.begin() as connection:
        for table in Base.metadata.sorted_tables:
            present = {c["name"] for c in inspector.get_columns(table.name)}
            for column in table.columns:
                if column.name in present:
                    continue
                kind = column.type.compile(engine.dialect)
                default = column.default.arg if column.default is not None and column.default.is_scalar else None
                suffix = f" DEFAULT {default!r}" if isinstance(default, (int, str)) and not isinstance(default, bool) else ""
                connection.execute(text(f'ALTER TABLE {table.name} ADD COLUMN "{column.name}" {kind}{suffix}'))
                if (table.name, column.name) in BACKFILLS:
                    connection.execute(text(BACKFILLS[table.name, column.name]))


def _finite(value: Any) -> Any:
    """The value with every NaN or infinity replaced by None, all the way down."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _to_json(value: Any) -> str:
    # A number not measured is NaN in Python; SQLite's JSON accepts the token, PostgreSQL's refuses it
    # (and so does the JSON standard): store null, which every reader already treats as "not measured".
    return json.dumps(_finite(value))


class Ledger:
    """Opens the database named by a SQLAlchemy URL and creates the tables if they are missing."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = create_engine(url, pool_pre_ping=True, json_serializer=_to_json)
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        Base.metadata.create_all(self.engine)
        _add_missing_columns(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """One unit of work: committed as a whole or not at all."""
        with self._sessions.begin() as session:
            yield session

    def dispose(self) -> None:
        """Release the engine's connections."""
        self.engine.dispose()

    # Reads used by more than one stage.
    def batches(self, *, status: str | None = None) -> list[BatchRow]:
        """Every batch, oldest first, optionally only those of one status."""
        with self._sessions() as session:
            query = select(BatchRow).order_by(BatchRow.received_at, BatchRow.batch_id)
            if status:
                query = query.where(BatchRow.status == status)
            return list(session.scalars(query))

    def batch(self, batch_id: str) -> BatchRow | None:
        """One batch by id, or None."""
        with self._sessions() as session:
            return session.get(BatchRow, batch_id)

    def batches_awaiting_drift_check(self) -> list[BatchRow]:
        """Accepted batches whose drift check has not been recorded, oldest first; a batch whose check
        failed waits out its back-off (compared here, not in SQL: SQLite keeps no time zone)."""
        now = utcnow()
        with self._sessions() as session:
            query = select(BatchRow).where(BatchRow.status == "accepted", BatchRow.drift_status == "pending")
            rows = session.scalars(query.order_by(BatchRow.received_at))
            return [row for row in rows if row.retry_at is None or aware(row.retry_at) <= now]

    def unanswered_drift(self) -> list[BatchRow]:
        """Batches whose detected drift no retrain has answered yet (suspect labels are never learned)."""
        with self._sessions() as session:
            query = select(BatchRow).where(
                BatchRow.status == "accepted",
                BatchRow.drift_status == "detected",
                BatchRow.trained_in.is_(None),
                BatchRow.suspect_labels.is_(False),
            )
            return list(session.scalars(query.order_by(BatchRow.received_at)))

    def drift_checks(self, batch_id: str | None = None) -> list[DriftCheckRow]:
        """Drift checks in the order they were recorded, of one batch or of all."""
        with self._sessions() as session:
            query = select(DriftCheckRow).order_by(DriftCheckRow.id)
            if batch_id:
                query = query.where(DriftCheckRow.batch_id == batch_id)
            return list(session.scalars(query))

    def recent_drift_checks(self, reference_version: str, limit: int) -> list[DriftCheckRow]:
        """The last `limit` drift checks against one reference version, oldest first."""
        with self._sessions() as session:
            query = select(DriftCheckRow).where(DriftCheckRow.reference_version == reference_version)
            return list(session.scalars(query.order_by(DriftCheckRow.id.desc()).limit(limit)))[::-1]

    def last_drift_check_at(self) -> dt.datetime | None:
        """When the most recent drift check was recorded; None before the first."""
        with self._sessions() as session:
            return session.scalars(select(DriftCheckRow.checked_at).order_by(DriftCheckRow.id.desc()).limit(1)).first()

    def latest_tuning(self) -> TuningRow | None:
        """The most recent model search, whose choice retrains use; None before the first."""
        with self._sessions() as session:
            return session.scalars(select(TuningRow).order_by(TuningRow.id.desc()).limit(1)).first()

    def training_runs(self) -> list[TrainingRunRow]:
        """Every training run, oldest first."""
        with self._sessions() as session:
            return list(session.scalars(select(TrainingRunRow).order_by(TrainingRunRow.id)))

    def training_run(self, run_id: int) -> TrainingRunRow | None:
        """One training run by id, or None."""
        with self._sessions() as session:
            return session.get(TrainingRunRow, run_id)

    def models(self, model_name: str) -> list[ModelRow]:
        """Every version of a registered model the ledger knows, by version number."""
        with self._sessions() as session:
            query = select(ModelRow).where(ModelRow.model_name == model_name)
            return sorted(session.scalars(query), key=lambda row: int(row.version))

    def model(self, model_name: str, version: str) -> ModelRow | None:
        """One version of a registered model, or None."""
        with self._sessions() as session:
            return session.get(ModelRow, (model_name, str(version)))

    def alias_moves(self, model_name: str) -> list[AliasMoveRow]:
        """Every alias move, newest first."""
        with self._sessions() as session:
            query = select(AliasMoveRow).where(AliasMoveRow.model_name == model_name)
            return list(session.scalars(query.order_by(AliasMoveRow.id.desc())))

    def drift_reports(self) -> list[DriftReportRow]:
        """Every scheduled drift report, oldest first."""
        with self._sessions() as session:
            return list(session.scalars(select(DriftReportRow).order_by(DriftReportRow.id)))
