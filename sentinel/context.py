"""The application context: one project's settings, ledger and registry, and how to find its versions.

Every use case module takes a `Sentinel` as its first argument. The context knows no use case: it
opens what they share and answers "which version is that?", nothing more. It imports neither MLflow
nor Evidently, so the commands that only read the ledger stay fast.
"""

from __future__ import annotations

import getpass
from dataclasses import dataclass, field
from functools import cached_property

from sentinel.errors import SentinelError
from sentinel.ledger import Ledger, ModelRow
from sentinel.memo import Memo
from sentinel.settings import Settings
from sentinel.steps import Steps, direct


def os_user() -> str:
    """Who runs this process, for the actor of an alias move; "unknown" where the system cannot say."""
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry in some containers
        return "unknown"


@dataclass
class Sentinel:
    """One project: its settings, ledger and (lazily, since MLflow is slow to import) its registry."""

    settings: Settings
    ledger: Ledger = field(init=False)
    steps: Steps = direct  # how the use cases run their stages (the flows make each a Prefect task)
    memo: Memo = field(default_factory=Memo)  # how they run costly pure computations (a replay keeps them)

    def __post_init__(self) -> None:
        self.settings.ensure_dirs()
        self.ledger = Ledger(self.settings.ledger_url)

    @cached_property
    def registry(self):
        """The MLflow registry of the project's registered model (imports MLflow on first use)."""
        from sentinel.registry import Registry

        return Registry(self.settings)

    @cached_property
    def registry_view(self):
        """Read-only registry questions (versions, tags, aliases), through a running MLflow server's REST
        API when there is one (milliseconds, where the client costs seconds of imports), else `registry`."""
        from sentinel.registry_view import open_view

        return open_view(self.settings, lambda: self.registry)

    def close(self) -> None:
        """Release the ledger's connections."""
        self.ledger.dispose()

    def champion(self) -> ModelRow | None:
        """The version holding the `champion` alias, as the ledger knows it; None before the first."""
        version = self.registry_view.alias_version("champion")
        return self.ledger.model(self.settings.registered_model, version) if version else None

    def require_champion(self) -> ModelRow:
        """The champion, or an error that says how to get a first one."""
        champion = self.champion()
        if champion is None:
            raise SentinelError("there is no champion yet: run `sentinel bootstrap --reference FILE.csv` (or `sentinel demo`)")
        return champion

    def load_model(self, row: ModelRow):
        """A version's fitted pipeline, loaded only after its recorded digest matches."""
        return self.registry.load(row.version, row.artifact_sha256, row.manifest)


def resolve_version(app: Sentinel, alias: str = "champion", version: str | None = None) -> ModelRow:
    """The ledger row of `version`, or of the version holding `alias`; a clear error for neither."""
    if version is None:
        version = app.registry_view.alias_version(alias)
        if version is None:
            raise SentinelError(f"no version has the alias {alias!r}; see `sentinel models`")
    row = app.ledger.model(app.settings.registered_model, str(version))
    if row is None:
        raise SentinelError(f"unknown version {version} of {app.settings.registered_model}; see `sentinel models`")
    return row
