"""`sentinel doctor`: do the ledger, the files and the registry agree? Each check names what disagrees and
what to do about it; `--repair` does what can be done safely, moving files aside (never deleting them)
and recording every alias it touches in the ledger.

A crash can leave the three out of step at a few known points (`sentinel.failpoints` names them): batch
files stored but the ledger row never committed; a rejected file quarantined but not recorded; a version
registered in MLflow but never recorded in the ledger; a promotion decided and recorded but the alias
never moved; an alias moved in MLflow but not in the ledger's history (or the other way round).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from sentinel import batch_format, intake, locks
from sentinel.context import Sentinel
from sentinel.promotion import finish_promotions, move_alias, stranded_promotions
from sentinel.references import ensure_reference


@dataclass
class Check:
    """One agreement check: its name, what it found wrong, and what a repair mended."""

    name: str
    problems: list[str] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when the check found nothing wrong."""
        return not self.problems

    def as_dict(self) -> dict:
        """The check as `doctor --json` prints it."""
        return asdict(self) | {"ok": self.ok}


DOCTOR = "sentinel doctor"
RETRAINING = "skipped: a retrain is running; run doctor again when it is done"


def batches_on_disk(app: Sentinel) -> Check:
    """Every accepted batch has its parquet and CSV copies under data/batches/."""
    check = Check("accepted batches are on disk")
    for batch in app.ledger.batches(status="accepted"):
        stored = Path(batch.stored_path or "")
        for path in (stored, stored.with_suffix(".csv")):
            if not path.is_file():
                check.problems.append(f"batch {batch.batch_id} ({batch.file_name}): {path} is missing")
    return check


def stored_without_ledger(app: Sentinel) -> Check:
    """No stored batch file is unknown to the ledger."""
    check = Check("every stored batch is in the ledger")
    known = {b.batch_id for b in app.ledger.batches()}
    folder = app.settings.batches_dir
    for path in sorted(folder.glob("*.parquet")) if folder.exists() else []:
        if path.stem not in known:
            check.problems.append(
                f"{path} has no ledger row (an intake stopped before its commit; its file is still in the drop zone or quarantine)"
            )
    return check


def _unrecorded_quarantine(app: Sentinel) -> list[Path]:
    """Quarantined files whose rejection never reached the ledger (their reason names the batch id)."""
    folder = app.settings.quarantine_dir
    found = []
    for reason_file in sorted(folder.glob(f"*{intake.REASON_SUFFIX}")) if folder.exists() else []:
        try:
            batch_id = json.loads(reason_file.read_text()).get("batch_id")
        except (OSError, ValueError):
            continue  # not one of ours
        if batch_id and app.ledger.batch(batch_id) is None:
            found.append(Path(str(reason_file).removesuffix(intake.REASON_SUFFIX)))
    return found


def quarantine_in_ledger(app: Sentinel) -> Check:
    """Every quarantined file has its ledger row."""
    problems = [f"{path} has no ledger row (an intake stopped after moving it)" for path in _unrecorded_quarantine(app)]
    return Check("every quarantined file is in the ledger", problems)


def promotions_completed(app: Sentinel) -> Check:
    """Every version the gate promoted holds, or once held, the champion alias."""
    problems = [
        f"version {m.version} passed the gate but never became champion (a retrain stopped before moving the alias)"
        for m in stranded_promotions(app)
    ]
    return Check("every version the gate promoted was made champion", problems)


def _unknown_versions(app: Sentinel) -> list:
    """Registered versions the ledger does not know, except those an earlier --repair retired."""
    return [
        info
        for info in app.registry_view.versions()
        if app.ledger.model(app.settings.registered_model, info.version) is None
        and not (info.tags.get("sentinel.role") == "incomplete" and not info.aliases)
    ]


def versions_in_ledger(app: Sentinel) -> Check:
    """Every version registered in MLflow is one the ledger knows."""
    check = Check("every registered version is in the ledger")
    for info in _unknown_versions(app):
        roles = f" and holds {', '.join(info.aliases)}" if info.aliases else ""
        check.problems.append(
            f"version {info.version} is registered in MLflow but not in the ledger{roles} (a retrain stopped after registering)"
        )
    return check


def aliases_agree(app: Sentinel) -> Check:
    """MLflow's champion and challenger aliases are where the ledger's last alias moves put them."""
    check = Check("MLflow's aliases agree with the ledger's alias history")
    latest = _last_moves(app)
    for alias in ("champion", "challenger"):
        in_mlflow = app.registry_view.alias_version(alias)
        if in_mlflow != latest.get(alias):
            check.problems.append(f"alias {alias}: MLflow says version {in_mlflow}, the ledger's last move says {latest.get(alias)}")
    champion = app.champion()
    if champion is not None and not (champion.reference_path and Path(champion.reference_path).is_file()):
        check.problems.append(f"champion version {champion.version} has no drift reference on disk ({champion.reference_path})")
    return check


def no_failed_checks(app: Sentinel) -> Check:
    """No batch is parked because its drift check kept failing."""
    problems = [
        f"batch {b.batch_id} ({b.file_name}): its drift check failed {b.check_attempts} times ({b.check_error}); "
        f"fix the cause, then `sentinel requeue {b.batch_id}`"
        for b in app.ledger.batches(status="accepted")
        if b.drift_status == "failed"
    ]
    return Check("no batch's drift check is parked as failed", problems)


def leave_to_a_person(app: Sentinel) -> list[str]:
    """No repair: checking a batch again that failed every time only fails again until its cause is fixed."""
    return []


# ---- repairs: each returns what it did -----------------------------------------------------------
def rebuild_batches(app: Sentinel) -> list[str]:
    """A lost parquet copy is rebuilt from the batch's original bytes, which are kept beside it."""
    done = []
    lenient = app.settings.intake.model_copy(update={"max_text_chars": 10**7, "min_rows": 1, "min_class_share": 0.0})
    for batch in app.ledger.batches(status="accepted"):
        stored = Path(batch.stored_path or "")
        original = stored.with_suffix(".csv")
        if not stored.is_file() and original.is_file():
            frame = batch_format.parse_batch(original.read_bytes(), lenient)
            frame.to_parquet(stored, index=False)
            done.append(f"rebuilt {stored} from {original}")
    return done


def set_aside_orphans(app: Sentinel) -> list[str]:
    """Stored copies with no ledger row are moved to quarantine/orphaned/: the intake that wrote them
    never committed, and the dropped file they came from is taken in again."""
    known = {b.batch_id for b in app.ledger.batches()}
    aside = app.settings.quarantine_dir / "orphaned"
    done = []
    for path in sorted(app.settings.batches_dir.glob("*")) if app.settings.batches_dir.exists() else []:
        if path.is_file() and path.stem not in known and not path.name.startswith("."):
            aside.mkdir(parents=True, exist_ok=True)
            moved = intake.move_no_clobber(path, aside / path.name)
            done.append(f"moved {path.name} to {moved}")
    return done


def release_unrecorded_quarantine(app: Sentinel) -> list[str]:
    """A quarantined file the ledger never heard of goes back to the drop zone, to be judged again."""
    done = []
    for path in _unrecorded_quarantine(app):
        target = intake.release(app.settings.incoming_dir / path.name, path)
        done.append(f"moved {path.name} back to {target}")
    return done


def complete_promotions(app: Sentinel) -> list[str]:
    """The repair of `promotions_completed`: finish each interrupted promotion by the compare-and-set."""
    finished = finish_promotions(app, DOCTOR)
    return [RETRAINING] if finished is None else finished


def retire_unknown_versions(app: Sentinel) -> list[str]:
    """A version the ledger does not know was never gated to the end: it loses any alias (the champion
    goes back to the ledger's last champion) and is tagged as such."""

    done = []
    with locks.held(app.settings, "retrain", timeout=0) as idle:
        if not idle:
            return [RETRAINING]
        with locks.promotion_lock(app.settings):
            last = _last_moves(app)
            for info in _unknown_versions(app):
                for alias in info.aliases:
                    move_alias(app, alias, last.get(alias), DOCTOR, f"version {info.version} is not in the ledger (interrupted retrain)")
                    done.append(f"alias {alias}: version {info.version} -> {last.get(alias)}")
                app.registry.set_tags(
                    info.version, {"role": "incomplete", "reason": "registered, but its retrain stopped before the ledger recorded it"}
                )
                done.append(f"tagged version {info.version} incomplete")
    return done


def adopt_mlflow_aliases(app: Sentinel) -> list[str]:
    """An alias moved in MLflow alone (a person in the MLflow UI, or a stop between the two writes) is
    taken as the truth and written into the ledger's history; a new champion gets its drift reference."""
    from sentinel.ledger import AliasMoveRow, utcnow

    done = []
    with locks.promotion_lock(app.settings):
        last = _last_moves(app)
        for alias in ("champion", "challenger"):
            current = app.registry.alias_version(alias)
            if current == last.get(alias) or (current and app.ledger.model(app.settings.registered_model, current) is None):
                continue
            with app.ledger.transaction() as session:
                session.add(
                    AliasMoveRow(
                        model_name=app.settings.registered_model,
                        alias=alias,
                        from_version=last.get(alias),
                        to_version=current,
                        actor=DOCTOR,
                        reason="moved in MLflow only; recorded by doctor",
                        moved_at=utcnow(),
                    )
                )
            done.append(f"recorded alias {alias}: {last.get(alias)} -> {current}")
    champion = app.champion()
    if champion is not None and not (champion.reference_path and Path(champion.reference_path).is_file()):
        ensure_reference(app, champion)
        done.append(f"built the drift reference of champion version {champion.version}")
    return done


def _last_moves(app: Sentinel) -> dict[str, str | None]:
    latest: dict[str, str | None] = {}
    for move in app.ledger.alias_moves(app.settings.registered_model):  # newest first
        latest.setdefault(move.alias, move.to_version)
    return latest


INTAKE_BUSY = "skipped: intake is taking files in; run doctor --repair again"


def under_intake_lock(repair):
    """A repair of files intake writes, made while intake is not running (the lock intake holds): a file
    intake is halfway through would otherwise look orphaned or unrecorded."""

    def locked(app: Sentinel) -> list[str]:
        with locks.held(app.settings, "intake", timeout=60) as idle:
            return repair(app) if idle else [INTAKE_BUSY]

    locked.__doc__ = repair.__doc__
    return locked


CHECKS = (
    (batches_on_disk, under_intake_lock(rebuild_batches)),
    (stored_without_ledger, under_intake_lock(set_aside_orphans)),
    (quarantine_in_ledger, under_intake_lock(release_unrecorded_quarantine)),
    (versions_in_ledger, retire_unknown_versions),
    (promotions_completed, complete_promotions),
    (aliases_agree, adopt_mlflow_aliases),
    (no_failed_checks, leave_to_a_person),
)


def examine(app: Sentinel, repair: bool = False) -> dict:
    """Every check; with `repair`, each failing check is repaired and run again."""
    checks = []
    for check, mend in CHECKS:
        found = check(app)
        if repair and not found.ok:
            done = mend(app)
            found = check(app)
            found.repaired = done
        checks.append(found)
    return {"ok": all(c.ok for c in checks), "checks": [c.as_dict() for c in checks]}
