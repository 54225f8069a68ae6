"""`sentinel doctor`: do the ledger, the files and the registry agree? Each check names what disagrees and
what a person (or a future `--repair`) should do about it. Read-only.

A crash can leave the three out of step at a few known points: batch files stored but the ledger row
never committed; a version registered in MLflow but never recorded in the ledger; an alias moved in
MLflow but not in the ledger's history (or the other way round).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from sentinel.services import Sentinel


@dataclass
class Check:
    name: str
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict:
        return asdict(self) | {"ok": self.ok}


def batches_on_disk(app: Sentinel) -> Check:
    check = Check("accepted batches are on disk")
    for batch in app.ledger.batches(status="accepted"):
        stored = Path(batch.stored_path or "")
        for path in (stored, stored.with_suffix(".csv")):
            if not path.is_file():
                check.problems.append(f"batch {batch.batch_id} ({batch.file_name}): {path} is missing")
    return check


def stored_without_ledger(app: Sentinel) -> Check:
    check = Check("every stored batch is in the ledger")
    known = {b.batch_id for b in app.ledger.batches()}
    folder = app.settings.batches_dir
    for path in sorted(folder.glob("*.parquet")) if folder.exists() else []:
        if path.stem not in known:
            check.problems.append(f"{path} has no ledger row (an intake stopped before its commit; its file is still in the drop zone or quarantine)")
    return check


def versions_in_ledger(app: Sentinel) -> Check:
    check = Check("every registered version is in the ledger")
    for info in app.registry.versions():
        if app.ledger.model(app.settings.registered_model, info.version) is None:
            roles = f" and holds {', '.join(info.aliases)}" if info.aliases else ""
            check.problems.append(f"version {info.version} is registered in MLflow but not in the ledger{roles} (a retrain stopped after registering)")
    return check


def aliases_agree(app: Sentinel) -> Check:
    check = Check("MLflow's aliases agree with the ledger's alias history")
    latest: dict[str, str | None] = {}
    for move in app.ledger.alias_moves(app.settings.registered_model):  # newest first
        latest.setdefault(move.alias, move.to_version)
    for alias in ("champion", "challenger"):
        in_mlflow = app.registry.alias_version(alias)
        if in_mlflow != latest.get(alias):
            check.problems.append(f"alias {alias}: MLflow says version {in_mlflow}, the ledger's last move says {latest.get(alias)}")
    champion = app.champion()
    if champion is not None and not (champion.reference_path and Path(champion.reference_path).is_file()):
        check.problems.append(f"champion version {champion.version} has no drift reference on disk ({champion.reference_path})")
    return check


CHECKS = (batches_on_disk, stored_without_ledger, versions_in_ledger, aliases_agree)


def examine(app: Sentinel) -> dict:
    checks = [run(app) for run in CHECKS]
    return {"ok": all(c.ok for c in checks), "checks": [c.as_dict() for c in checks]}
