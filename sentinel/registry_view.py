"""Read-only questions to the model registry (which versions exist, their tags and aliases, a run's
experiment), asked of MLflow's REST API when a server holds the project's store (the tracking URI is a
server, or this project's `sentinel up` serves the store the tracking URI names), else of the store's
SQL database when the tracking URI names one.

Why by hand: importing MLflow's client and building its store costs 2.3-2.7 s here before the first
question (docs/performance.md), which is most of a read command such as `sentinel models`; one call to
a server on loopback costs milliseconds. Only documented endpoints are used, and anything this view does
not understand (an error, a server that needs credentials we cannot send) is asked again through
`MlflowClient`, which stays the only writer."""

from __future__ import annotations

import base64
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass

from sentinel.settings import Settings
from sentinel.up_state import running_service_url


@dataclass(frozen=True)
class VersionInfo:
    """What MLflow holds of one version: aliases, tags, run and creation time."""

    version: str
    aliases: tuple[str, ...]
    tags: dict[str, str]
    run_id: str | None
    created_ms: int


def server_url(settings: Settings) -> str | None:
    """The MLflow server that holds this project's registry, if one does."""
    uri = settings.mlflow_tracking_uri
    if uri.startswith(("http://", "https://")):
        return uri.rstrip("/")
    served_store = settings.up.mlflow_backend_store or f"sqlite:///{settings.home / 'mlflow.db'}"
    return running_service_url(settings, "mlflow") if uri == served_store else None


class NotFound(LookupError):
    """MLflow answered that the registered model (or run) does not exist."""


class RestRegistryView:
    """Reads one registered model through MLflow's REST API. `fallback()` gives the registry that answers
    when this view cannot (see the module's docstring)."""

    def __init__(self, url: str, name: str, fallback: Callable[[], object], timeout: float = 10.0) -> None:
        self.url = url
        self.name = name
        self.fallback = fallback
        self.timeout = timeout

    def versions(self) -> list[VersionInfo]:
        """Every version with its aliases, oldest first."""
        try:
            model = self._get("registered-models/get", name=self.name)["registered_model"]
        except NotFound:
            return []
        except _Unanswered:
            return self.fallback().versions()
        by_version: dict[str, list[str]] = {}
        for entry in model.get("aliases", []):
            by_version.setdefault(str(entry["version"]), []).append(entry["alias"])
        found, token = [], None
        try:
            while True:
                page = self._get("model-versions/search", filter=f"name = '{self.name}'", max_results=1000, page_token=token)
                found += page.get("model_versions", [])
                token = page.get("next_page_token")
                if not token:
                    break
        except (NotFound, _Unanswered):
            return self.fallback().versions()
        return sorted(
            (
                VersionInfo(
                    str(v["version"]),
                    tuple(sorted(by_version.get(str(v["version"]), []))),
                    {t["key"]: t.get("value", "") for t in v.get("tags", [])},
                    v.get("run_id") or None,
                    int(v.get("creation_timestamp") or 0),
                )
                for v in found
            ),
            key=lambda v: int(v.version),
        )

    def alias_version(self, alias: str) -> str | None:
        """The version holding an alias, or None when no version does."""
        try:
            model = self._get("registered-models/get", name=self.name)["registered_model"]
        except NotFound:
            return None
        except _Unanswered:
            return self.fallback().alias_version(alias)
        return next((str(a["version"]) for a in model.get("aliases", []) if a["alias"] == alias), None)

    def run_experiment(self, run_id: str) -> str:
        """The id of the experiment a run belongs to."""
        try:
            return str(self._get("runs/get", run_id=run_id)["run"]["info"]["experiment_id"])
        except (NotFound, _Unanswered):
            return self.fallback().run_experiment(run_id)

    def _get(self, endpoint: str, **params) -> dict:
        query = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
        request = urllib.request.Request(f"{self.url}/api/2.0/mlflow/{endpoint}?{query}", headers=_credentials())
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.load(response)
        except urllib.error.HTTPError as error:
            try:
                code = json.load(error).get("error_code")
            except ValueError:
                code = None
            if code == "RESOURCE_DOES_NOT_EXIST":
                raise NotFound(endpoint) from error
            raise _Unanswered(str(error)) from error
        except (OSError, ValueError) as error:  # refused, timed out, not JSON
            raise _Unanswered(str(error)) from error


class SqlRegistryView:
    """Reads one registered model straight from the SQL database MLflow keeps its store in, when no server
    holds it (a project without `sentinel up` running). Why by hand: the same as the REST view's, and
    the store's tables say it as plainly as the API: `model_versions` (a deleted version is marked
    `Deleted_Internal`, as MLflow's own searches leave it out), `model_version_tags`,
    `registered_model_aliases`, and `runs` for a run's experiment. Read only; a database this view cannot
    read as it expects (missing, or a schema of another MLflow) is asked through `MlflowClient`."""

    DELETED = "Deleted_Internal"

    def __init__(self, url: str, name: str, fallback: Callable[[], object]) -> None:
        self.url = url
        self.name = name
        self.fallback = fallback
        self._engine = None

    def versions(self) -> list[VersionInfo]:
        """Every version with its aliases, oldest first."""
        try:
            found = self._rows(
                "select version, run_id, creation_time from model_versions where name = :name and current_stage != :deleted",
                deleted=self.DELETED,
            )
            tags = self._rows("select version, key, value from model_version_tags where name = :name")
            aliases = self._rows("select alias, version from registered_model_aliases where name = :name")
        except _Unanswered:
            return self.fallback().versions()
        by_version: dict[str, dict[str, str]] = {}
        for version, key, value in tags:
            by_version.setdefault(str(version), {})[key] = value or ""
        return [
            VersionInfo(
                str(version),
                tuple(sorted(a for a, v in aliases if str(v) == str(version))),
                by_version.get(str(version), {}),
                run_id or None,
                int(created or 0),
            )
            for version, run_id, created in sorted(found, key=lambda row: int(row[0]))
        ]

    def alias_version(self, alias: str) -> str | None:
        """The version holding an alias, or None when no version does."""
        try:
            found = self._rows("select version from registered_model_aliases where name = :name and alias = :alias", alias=alias)
        except _Unanswered:
            return self.fallback().alias_version(alias)
        return str(found[0][0]) if found else None

    def run_experiment(self, run_id: str) -> str:
        """The id of the experiment a run belongs to."""
        try:
            found = self._rows("select experiment_id from runs where run_uuid = :run_id", run_id=run_id)
        except _Unanswered:
            found = []
        return str(found[0][0]) if found else self.fallback().run_experiment(run_id)

    def _rows(self, query: str, **params) -> list[tuple]:
        from sqlalchemy import create_engine, text
        from sqlalchemy.exc import SQLAlchemyError
        from sqlalchemy.pool import NullPool

        if self.url.startswith("sqlite:///") and not os.path.isfile(self.url.removeprefix("sqlite:///")):
            raise _Unanswered("no store yet")  # connecting would create an empty database file
        try:
            self._engine = self._engine or create_engine(self.url, poolclass=NullPool)  # no connection is kept open
            with self._engine.connect() as connection:
                return [tuple(row) for row in connection.execute(text(query), {"name": self.name, **params})]
        except (SQLAlchemyError, ImportError) as error:  # ImportError: a database driver this install lacks
            raise _Unanswered(str(error)) from error


class _Unanswered(Exception):
    """The server gave no usable answer; the client is asked instead."""


def _credentials() -> dict[str, str]:
    """The headers MLflow's own client would send, from the same environment variables."""
    if token := os.environ.get("MLFLOW_TRACKING_TOKEN"):
        return {"Authorization": f"Bearer {token}"}
    user, password = os.environ.get("MLFLOW_TRACKING_USERNAME"), os.environ.get("MLFLOW_TRACKING_PASSWORD")
    if user and password:
        return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}
    return {}


def open_view(settings: Settings, fallback: Callable[[], object]):
    """The REST view when a server holds the registry, the SQL view when the tracking URI is a database,
    else the registry `fallback()` gives."""
    if url := server_url(settings):
        return RestRegistryView(url, settings.registered_model, fallback)
    if settings.mlflow_tracking_uri.startswith(("sqlite:", "postgresql", "mysql")):
        return SqlRegistryView(settings.mlflow_tracking_uri, settings.registered_model, fallback)
    return fallback()
