"""The registry: everything Sentinel says to MLflow about models — logging, registering, aliases, tags,
and loading a model only after its artifact digest has been checked."""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import tempfile
import warnings
from concurrent.futures import Future, ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path
from typing import Any

# Set before MLflow reads it: no progress bars in logs and JSON output.
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

import mlflow  # noqa: E402
from mlflow import MlflowClient  # noqa: E402
from mlflow.exceptions import MlflowException  # noqa: E402
from mlflow.models import infer_signature  # noqa: E402

from sentinel.errors import RegistryUnavailable, TamperedModel
from sentinel.registry_view import VersionInfo
from sentinel.settings import Settings

TAG = "sentinel."
# The model runs wherever these are installed; passing them spares MLflow inferring them (seconds).
PIP_REQUIREMENTS = ["scikit-learn", "pandas", "numpy", "scipy"]

# Sentinel pickles on purpose and checks every pickle's digest before loading it (see `load`).
logging.getLogger("mlflow.sklearn").setLevel(logging.ERROR)
# "Created version N" and migration notes are MLflow's business; Sentinel reports what matters itself.
logging.getLogger("mlflow").setLevel(logging.WARNING)


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def artifact_digest(model_dir: Path) -> str:
    """sha256 of the pickle, the file whose loading runs code."""
    return _file_sha256(model_dir / "model.pkl")


# MLflow writes this file into the folder it downloads a registered version to (the name and version it
# was fetched as); it is never in the store, and nothing loads code from it.
WRITTEN_AT_DOWNLOAD = {"registered_model_meta"}


def manifest(model_dir: Path) -> dict[str, str]:
    """sha256 of every file of a model's artifacts, by path inside the folder: an edited `MLmodel` (its
    loader, its pickle's name, code paths) or an added file is as much a change as another pickle."""
    return {
        path.relative_to(model_dir).as_posix(): _file_sha256(path)
        for path in sorted(model_dir.rglob("*"))
        if path.is_file() and path.relative_to(model_dir).as_posix() not in WRITTEN_AT_DOWNLOAD
    }


def manifest_changes(recorded: dict[str, str], found: dict[str, str]) -> list[str]:
    """What differs between a recorded manifest and the files found, one phrase per file; empty if none."""
    changes = [f"{name} was changed" for name in sorted(recorded.keys() & found.keys()) if recorded[name] != found[name]]
    changes += [f"{name} is missing" for name in sorted(recorded.keys() - found.keys())]
    changes += [f"{name} was added" for name in sorted(found.keys() - recorded.keys())]
    return changes


def _is_not_found(error: MlflowException) -> bool:
    """True when MLflow says the model or alias does not exist. MLflow answers a missing registered model
    with RESOURCE_DOES_NOT_EXIST but a missing alias of an existing model with INVALID_PARAMETER_VALUE,
    so the latter is read with its message."""
    if error.error_code == "RESOURCE_DOES_NOT_EXIST":
        return True
    return error.error_code == "INVALID_PARAMETER_VALUE" and "not found" in str(error)


def unavailable(tracking_uri: str, error: Exception) -> RegistryUnavailable:
    """The error to raise when MLflow cannot be asked: what happened, and what to do."""
    detail = str(error).splitlines()[0][:300] if str(error) else type(error).__name__
    return RegistryUnavailable(
        f"MLflow at {tracking_uri} did not answer ({detail}); nothing was changed. Start it (`sentinel up`, "
        "`sentinel status`) or check mlflow_tracking_uri, then try again"
    )


class Registry:
    """The MLflow Model Registry of one registered model: logging, registering, tags, aliases, verified loads."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.name = settings.registered_model
        mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
        self.client = MlflowClient(tracking_uri=settings.mlflow_tracking_uri, registry_uri=settings.mlflow_tracking_uri)
        self._creating: ThreadPoolExecutor | None = None  # see `start_run`
        self._experiment_ids: dict[str, str] = {}  # by name, for the runs `start_run` makes

    def experiment_id(self, name: str) -> str:
        """The id of an experiment, created on first use."""
        found = self.client.get_experiment_by_name(name)
        if found:
            return found.experiment_id
        location = None
        if not self.settings.mlflow_tracking_uri.startswith(("http://", "https://", "databricks")):
            # A local backend would put artifacts under the current directory; keep them in the project.
            location = (self.settings.artifacts_dir / name).as_uri()
        try:
            return self.client.create_experiment(name, artifact_location=location)
        except MlflowException:  # created by another process meanwhile
            return self.client.get_experiment_by_name(name).experiment_id

    def start_run(self, experiment: str, run_name: str, tags: dict[str, str]) -> Future:
        """Create a run in a thread and return at once; `finish_run` logs what it holds. A drift check
        creates its run while it measures, so the round trips of looking the experiment up and creating
        the run (a tenth of the watcher's time per check under load, profiled) are not on its path."""
        from mlflow.tracking.context.registry import resolve_tags  # the user and source tags `start_run` adds

        if self._creating is None:
            self._creating = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mlflow-run")
        return self._creating.submit(self._create_run, experiment, run_name, resolve_tags(tags))

    def _create_run(self, experiment: str, run_name: str, tags: dict[str, str]):
        known = self._experiment_ids.get(experiment)
        if known is not None:
            try:
                return self.client.create_run(known, run_name=run_name, tags=tags)
            except MlflowException as error:
                if error.error_code not in ("RESOURCE_DOES_NOT_EXIST", "INVALID_STATE", "INVALID_PARAMETER_VALUE"):
                    raise
                self._experiment_ids.pop(experiment, None)  # deleted or replaced since: look it up again
        self._experiment_ids[experiment] = self.experiment_id(experiment)
        return self.client.create_run(self._experiment_ids[experiment], run_name=run_name, tags=tags)

    def finish_run(self, started: Future, tags: dict[str, str], metrics: dict[str, float], params: dict[str, str], report: Path) -> str:
        """Log tags, metrics, parameters and the report (if the file exists) in the run `start_run`
        made, end it and return its id: three requests to the tracking server and a copy to its
        artifact store, which is written through the run's own artifact location (asking the client
        would fetch the run again to learn it)."""
        from mlflow.entities import Metric, Param, RunTag
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

        run = started.result()
        run_id = run.info.run_id
        try:
            now = run.info.start_time
            self.client.log_batch(
                run_id,
                metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()],
                params=[Param(k, v) for k, v in params.items()],
                tags=[RunTag(k, v) for k, v in tags.items()],
            )
            if report.exists():
                store = get_artifact_repository(run.info.artifact_uri, tracking_uri=self.settings.mlflow_tracking_uri)
                store.log_artifact(str(report), "reports")
        except BaseException:
            self.client.set_terminated(run_id, "FAILED")
            raise
        self.client.set_terminated(run_id)
        return run_id

    def abandon_run(self, started: Future) -> None:
        """End a run `start_run` made for work that then failed, as FAILED (nothing to do if the run
        could not be made)."""
        try:
            run = started.result()
        except Exception:
            return
        self.client.set_terminated(run.info.run_id, "FAILED")

    def log_run(
        self, experiment: str, run_name: str, tags: dict[str, str], metrics: dict[str, float], params: dict[str, str], report: Path
    ) -> str:
        """One finished run with its tags, metrics, parameters and report (if the file exists); returns
        its id. Four requests to the tracking server, where the fluent API's run makes seven."""
        return self.finish_run(self.start_run(experiment, run_name, tags), {}, metrics, params, report)

    def log_model(self, pipeline, example) -> tuple[str, str, dict[str, str]]:
        """Log the pipeline in the active run (pickle: MLflow 3's default skops format takes minutes for a
        TF-IDF pipeline) and return its model URI, the pickle's digest and the manifest of every file."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # MLflow's hint about integer outputs does not apply: labels are never missing
            signature = infer_signature(example, pipeline.predict(example))
        info = mlflow.sklearn.log_model(
            pipeline,
            name="model",
            serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_PICKLE,
            signature=signature,
            pip_requirements=PIP_REQUIREMENTS,
        )
        # Digest what the store actually holds (MLmodel carries ids and times), read back once.
        with tempfile.TemporaryDirectory() as folder:
            local = Path(mlflow.artifacts.download_artifacts(artifact_uri=info.model_uri, dst_path=folder))
            return info.model_uri, artifact_digest(local), manifest(local)

    def register(self, model_uri: str, tags: dict[str, Any], description: str = "") -> str:
        """A new version of the registered model, linked to its logged model and run, with the description
        the MLflow UI shows on its page."""
        version = mlflow.register_model(model_uri, self.name, tags=self._tags(tags))
        if description:
            self.client.update_model_version(self.name, version.version, description=description)
        return str(version.version)

    @staticmethod
    def _tags(tags: dict[str, Any]) -> dict[str, str]:
        return {
            f"{TAG}{key}": ("" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value))
            for key, value in tags.items()
        }

    def set_tags(self, version: str, tags: dict[str, Any]) -> None:
        """Set `sentinel.`-prefixed tags on a version."""
        for key, value in self._tags(tags).items():
            self.client.set_model_version_tag(self.name, version, key, value)

    def alias_version(self, alias: str) -> str | None:
        """The version holding an alias, or None when no version does. An MLflow that cannot answer is an
        error (RegistryUnavailable), never "no version": the bootstrap guard and the champion's
        compare-and-set must not act on a registry they could not read."""
        try:
            return str(self.client.get_model_version_by_alias(self.name, alias).version)
        except MlflowException as error:
            if _is_not_found(error):
                return None
            raise unavailable(self.settings.mlflow_tracking_uri, error) from error

    def set_alias(self, alias: str, version: str) -> None:
        """Point an alias at a version (last writer wins: call under the promotion lock)."""
        self.client.set_registered_model_alias(self.name, alias, version)

    def delete_alias(self, alias: str) -> None:
        """Remove an alias; removing one that is not set is not an error."""
        try:
            self.client.delete_registered_model_alias(self.name, alias)
        except MlflowException as error:
            if not _is_not_found(error):
                raise unavailable(self.settings.mlflow_tracking_uri, error) from error

    def versions(self) -> list[VersionInfo]:
        """Every version with its aliases. `search_model_versions` leaves aliases out, so they are read
        from the registered model itself."""
        try:
            aliases = self.client.get_registered_model(self.name).aliases or {}
        except MlflowException as error:
            if _is_not_found(error):
                return []
            raise unavailable(self.settings.mlflow_tracking_uri, error) from error
        by_version: dict[str, list[str]] = {}
        for alias, version in aliases.items():
            by_version.setdefault(str(version), []).append(alias)
        found = self.client.search_model_versions(f"name = '{self.name}'")
        return sorted(
            (
                VersionInfo(
                    str(v.version),
                    tuple(sorted(by_version.get(str(v.version), []))),
                    dict(v.tags or {}),
                    v.run_id,
                    int(v.creation_timestamp or 0),
                )
                for v in found
            ),
            key=lambda v: int(v.version),
        )

    def run_experiment(self, run_id: str) -> str:
        """The id of the experiment a run belongs to."""
        return self.client.get_run(run_id).info.experiment_id

    def load(self, version: str, expected_digest: str, expected_manifest: dict[str, str] | None = None):
        """Download, check every file against what was recorded at registration, and only then unpickle.
        (A version from before manifests were recorded has its pickle's digest checked.)"""
        recorded = tuple(sorted(expected_manifest.items())) if expected_manifest else None
        return _load_verified(self.settings.mlflow_tracking_uri, self.name, str(version), expected_digest, recorded)


@lru_cache(maxsize=4)
def _load_verified(tracking_uri: str, name: str, version: str, expected_digest: str, recorded: tuple | None):
    with tempfile.TemporaryDirectory() as folder:
        local = Path(
            mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{name}/{version}", dst_path=folder, tracking_uri=tracking_uri)
        )
        changes = manifest_changes(dict(recorded), manifest(local)) if recorded else []
        actual = artifact_digest(local) if (local / "model.pkl").is_file() else "missing"
        if actual != expected_digest:
            changes.append(f"model.pkl has digest {actual[:12]}, recorded {expected_digest[:12]}")
        if changes:
            raise TamperedModel(
                f"model {name} version {version} was changed after registration ({'; '.join(dict.fromkeys(changes))}); refusing to load it"
            )
        # The verified pickle itself, not whatever MLmodel names: MLflow's loader follows MLmodel's
        # `pickled_model`, `loader_module` and `code` entries, which a version from before manifests
        # were recorded cannot vouch for.
        with open(local / "model.pkl", "rb") as handle:
            return pickle.load(handle)  # noqa: S301 - its digest was checked above
