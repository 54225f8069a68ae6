"""Sentinel's settings: one typed object read once from `sentinel.toml` and `SENTINEL_*` variables.

Everything that differs between a laptop and a cluster is a URL or a path here, so scaling out is a
configuration change. Nested groups are set from the environment with a double underscore, for example
`SENTINEL_DRIFT__Z=5` or `SENTINEL_GATE__MARGIN=0.01`.
"""

from __future__ import annotations

import ipaddress
import os
import warnings
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource


def project_home() -> Path:
    """The project folder that holds all runtime state: `$SENTINEL_HOME`, else the current directory."""
    return Path(os.environ.get("SENTINEL_HOME") or Path.cwd()).resolve()


class SettingsDeprecation(UserWarning):
    """A setting that still works under an old name, said once per process."""


class _Group(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt key is an error, not silently ignored


DEFAULT_LABELS = {"0": 0, "1": 1, "0.0": 0, "1.0": 1, "negative": 0, "positive": 1, "neg": 0, "pos": 1, "false": 0, "true": 1}


class IntakePolicy(_Group):
    """What a batch file must look like to be accepted, and what is set aside from one that is."""

    max_bytes: int = Field(50_000_000, description="Larger files are quarantined unread.")
    min_rows: int = Field(100, description="Rows a drift check needs: smaller batches are accepted and pooled with the next ones.")
    pool_max_age_seconds: float = Field(600.0, description="A pool of small batches older than this is measured with what it has.")
    max_text_chars: int = Field(100_000, description="A longer single review is almost surely a broken file.")
    max_bad_row_share: float = Field(
        0.01,
        description="Rows with an empty text, an unknown label or an over-long text are set aside, up to this share; more refuses the file.",
    )
    min_class_share: float = Field(0.02, description="A batch whose minority label is rarer than this is one-class.")
    text_column: str = Field(
        "", description="The column holding the review; empty: `text`, or the one of review, sentence, content… present."
    )
    label_column: str = Field("", description="The column holding the label; empty: `label`, or the one of sentiment, polarity… present.")
    label_values: dict[str, int] = Field(
        default_factory=lambda: dict(DEFAULT_LABELS), description="Label spellings (case-insensitive) and the class each means."
    )
    default_source: str = Field("default", description="The source of rows whose file has no `source` column.")
    settle_seconds: float = Field(1.0, description="A file must be unchanged this long before it is read.")
    closed_settle_seconds: float = Field(0.2, description="...or this long, once the watcher saw its writer close it (inotify).")

    @model_validator(mode="before")
    @classmethod
    def _removed(cls, data):
        """`refuse_formulas` is gone: text is never refused for how it begins. Said, then ignored."""
        if isinstance(data, dict) and "refuse_formulas" in data:
            warnings.warn(
                "the setting intake.refuse_formulas no longer exists: a review that begins with = + - @ is review text "
                "and is learned like any other; Sentinel neutralises such cells in every CSV it writes. Remove the setting.",
                SettingsDeprecation,
                stacklevel=2,
            )
            data = {k: v for k, v in data.items() if k != "refuse_formulas"}
        return data


class DriftPolicy(_Group):
    """How drift is measured and when it counts as real."""

    reference_rows: int = Field(5000, description="Rows of the champion's training data kept as the drift reference.")
    calibration_draws: int = Field(10, description="Stable splits of the reference scored to learn the no-drift noise.")
    calibration_batch_rows: int = Field(1000, description="Size of each calibration pseudo-batch.")
    z: float = Field(3.5, description="A signal drifts when it exceeds the calibrated stable mean by z standard deviations.")
    alpha: float = Field(0.05, description="The standard deviation used is the upper 1-alpha bound from the calibration draws.")
    label_threshold: float = Field(0.1, description="Jensen-Shannon distance of the label shares (Evidently's default).")
    descriptor_threshold: float = Field(0.1, description="Floor for the normed Wasserstein distance of a descriptor.")
    text_threshold_floor: float = Field(0.52, description="The calibrated text ROC AUC threshold never goes below this.")
    performance_drop: float = Field(0.05, description="Champion accuracy drop on the batch, beyond its noise, that counts.")
    trigger: Literal["any", "harmful", "sustained"] = Field(
        "harmful",
        description="What starts a retrain. any: any signal drifts. harmful: the champion's accuracy on the batch drops (performance drift). "
        "sustained: harmful, or a smaller drop that lasts over `sustain_batches` batches.",
    )
    sustain_batches: int = Field(3, ge=2, description="Batches a sustained drop is pooled over.")
    suspect_accuracy: float = Field(0.35, description="Champion accuracy below this means the batch's labels look inverted.")
    check_attempts: int = Field(3, ge=1, description="Tries of a batch's drift check that fails before the batch is parked as failed.")
    check_retry_seconds: float = Field(30.0, ge=0, description="Wait before a failed drift check is tried again; doubles each time.")
    worker_timeout_seconds: float = Field(
        600.0, gt=0, description="A drift worker that gives no answer this long is replaced; the batch is tried again."
    )
    check_report: Literal["snapshot", "html"] = Field(
        "snapshot",
        description="What each drift check keeps in reports/drift/ and logs to its MLflow run. snapshot: Evidently's snapshot JSON "
        "(about 0.2 MB; `sentinel report --batch ID` renders its HTML). html: the HTML report (about 3.8 MB, 99 % of it Evidently's script bundle).",
    )


class GatePolicy(_Group):
    """When a challenger may replace the champion: one metric, judged where the data moved, with the
    evidence of later batches carried forward (see `sentinel.gate`)."""

    metric: Literal["accuracy", "macro_f1", "balanced_accuracy"] = Field(
        "accuracy", description="The one metric of the margin, the interval and the test, on every slice."
    )
    margin: float = Field(0.0, ge=0.0, lt=0.5, description="The challenger must beat the champion by more than this on the shifted rows.")
    alpha: float = Field(
        0.05,
        gt=0.0,
        lt=0.5,
        description="Error rate of every test: a challenger no better than the champion is promoted at most this often.",
    )
    noninferiority_bound: float = Field(
        0.02, ge=0.0, description="On the other new rows and the reference slice the challenger may be worse by at most this (tested)."
    )
    min_metric: float = Field(
        0.6,
        description="A batch whose unseen rows the challenger that learned them surely scores below this (or not surely above 0.5) has labels that cannot be learned.",
    )
    min_slice_rows: int = Field(50, description="A slice with fewer held-out rows is reported, not tested.")
    max_shadow_batches: int = Field(4, description="A challenger undecided after this many later batches is retired.")
    shadow_wait_batches: int = Field(
        2, ge=0, description="A refresh waits this many batches for a challenger whose evidence leans towards better."
    )
    bootstrap_rounds: int = Field(1000, description="Paired bootstrap resamples for the interval of the metric's delta.")
    holdout_share: float = Field(0.2, description="Share of every batch's rows that is held out and never trained on.")
    cross_fit_folds: int = Field(
        4,
        ge=0,
        description="The shifted batches' training rows are also judged, each predicted by one of this many models fitted without its fold (0 or 1: off).",
    )
    cross_fit_max_rows: int = Field(
        2000,
        ge=0,
        description="Cross-fit only while the shifted batches have at most this many training rows (their held-out rows suffice beyond).",
    )
    reference_holdout_rows: int = Field(2500, description="Cap on the reference slice used by the gate.")

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, data):
        """The F1-era names still work for one release, said once."""
        renamed = {"reference_regression": "noninferiority_bound", "min_f1": "min_metric"}
        if isinstance(data, dict) and any(old in data for old in renamed):
            data = dict(data)
            for old, new in renamed.items():
                if old in data:
                    warnings.warn(
                        f"the setting gate.{old} is now gate.{new} (the gate judges one metric, `gate.metric`); rename it",
                        SettingsDeprecation,
                        stacklevel=2,
                    )
                    data.setdefault(new, data.pop(old))
        return data


class TrainingPolicy(_Group):
    """What a retrain learns from."""

    new_rows_weight: float = Field(
        1.0, gt=0.0, description="Sample weight of the rows of batches the champion has not learned (1: every row counts the same)."
    )
    max_old_rows: int = Field(0, ge=0, description="Cap on the champion's training rows a retrain keeps, newest batches first (0: no cap).")
    refresh_share: float = Field(
        0.25,
        ge=0.0,
        description="Retrain without drift once the clean rows not yet tried reach this share of the rows the champion learned (0: never).",
    )
    refresh_first: bool = Field(
        True,
        description="The first batch that drifts without harm against a champion that learned no drifted batch retrains at once (a probe).",
    )


class ModelParams(_Group):
    """The model family and its hyper-parameters. `sentinel tune` (and `bootstrap`) search a grid around
    them; retrains use the search's choice, recorded in the ledger, when there is one."""

    family: Literal["word-lr", "nb-lr", "word-char-lr"] = Field(
        "word-lr",
        description="word-lr: TF-IDF of word n-grams, logistic regression; nb-lr: naive Bayes log-count ratios of word n-grams, "
        "logistic regression; word-char-lr: TF-IDF of word and character n-grams, logistic regression (short texts).",
    )
    ngram_max: int = 2
    min_df: int = 2
    max_features: int = 200_000
    C: float = 4.0
    max_iter: int = 1000
    seed: int = 42


class TunePolicy(_Group):
    """The model search (`sentinel tune`): a small grid over model families and their regularisation,
    scored by cross-validation on training rows only (never the gate's held-out rows)."""

    at_bootstrap: bool = Field(True, description="`bootstrap` searches before it trains the first champion (`--no-tune` skips it once).")
    retune_text_drift: float = Field(
        0.0,
        ge=0.0,
        description="A retrain searches again when its batches' text drift score reaches this (0: never; the score is a domain classifier's ROC AUC).",
    )
    families: list[Literal["word-lr", "nb-lr", "word-char-lr"]] = Field(
        ["word-lr", "word-char-lr"],
        description="The families searched. nb-lr is left out by default: trained on IMDB it matched word-lr on unseen IMDB "
        "(0.880) but lost 6 points on Rotten Tomatoes (0.642 against 0.702), and a cross-validation within one domain cannot see that.",
    )
    folds: int = Field(3, ge=2, le=10, description="Cross-validation folds.")
    search_rows: int = Field(
        2500,
        ge=200,
        description="The search scores candidates on at most this many training rows (a stratified sample); the chosen one learns them all.",
    )
    short_text_chars: int = Field(
        400,
        ge=0,
        description="Character n-grams (word-char-lr) join the grid when the median review is shorter than this: there they help and cost little.",
    )


class UpPolicy(_Group):
    """What `sentinel up` runs, where, and how often the scheduled flows fire."""

    host: str = Field("127.0.0.1", description="Interface every server binds; loopback unless you mean otherwise.")
    expose_unauthenticated: bool = Field(
        False,
        description="Must be true for a host other than loopback: the Prefect and MLflow servers have no authentication (see the README's security section).",
    )
    prefect_port: int = 4200
    mlflow_port: int = 5000
    evidently_port: int = Field(
        8000, description="The Evidently UI's port (its dashboards of the drift checks and reports); 0: not started."
    )
    report_cron: str = Field("0 6 * * *", description="When the drift-report deployment runs (cron, server time zone).")
    reconcile_seconds: int = Field(120, description="How often `reconcile` sweeps for work an event missed.")
    retrain_quiet_seconds: int = Field(10, description="A retrain waits until no drift check has been pending this long.")
    retrain_max_wait_seconds: int = Field(180, description="...but never longer than this, so a steady stream still retrains.")
    check_inline: bool = Field(True, description="The watcher checks drift itself right after intake (seconds, not a new process).")
    flow_processes: int = Field(4, description="Flow runs the served deployments run at once; more wait their turn.")
    notify_webhook_url: str = Field(
        "", description="Prefect automations post promotions, rejections, quarantined files and failed runs here; empty: none."
    )
    drift_worker: bool = Field(
        True,
        description="The watcher of `sentinel up` measures with a worker process beside it (~250 MB): both cores check a backlog. False: one core, less memory.",
    )
    # Scale-out: each of these moves one part off the embedded defaults (see the README's section on
    # running across machines).
    mlflow_backend_store: str = Field(
        "",
        description="The MLflow server's backend store; empty: sqlite:///<home>/mlflow.db. E.g. postgresql+psycopg://user@host:5432/mlflow",
    )
    mlflow_artifacts_destination: str = Field(
        "",
        description="Empty: artifacts are local files under <home>/mlartifacts. A URI (file:///shared/…, s3://…): the MLflow server stores them there and proxies them.",
    )
    prefect_database_url: str = Field(
        "", description="The Prefect server's database; empty: SQLite under .prefect/. E.g. postgresql+asyncpg://user@host:5432/prefect"
    )
    flow_runner: Literal["serve", "workers"] = Field(
        "serve",
        description="serve: one process serves the deployments. workers: they are deployed onto the process work pool `sentinel`, run by `workers` Prefect workers.",
    )
    workers: int = Field(2, ge=1, description="Prefect workers `sentinel up` starts when flow_runner is workers.")
    log_max_bytes: int = Field(10_000_000, ge=10_000, description="A server's log under .prefect/logs/ is rotated past this size.")
    log_backups: int = Field(3, ge=1, description="Rotated logs kept per server (NAME.log.1 is the newest).")

    def exposure_problem(self) -> str | None:
        """Why `sentinel up` must not start with this host, or None: neither the Prefect nor the MLflow
        server asks who is calling, and both can move the champion or run code, so a host beyond
        loopback needs a person's explicit acknowledgement."""
        if self.expose_unauthenticated or _is_loopback(self.host):
            return None
        return (
            f"up.host is {self.host}, not loopback: the Prefect and MLflow servers would answer anyone who reaches it, with no "
            "authentication. Put them behind a proxy that authenticates (README, Security) and set "
            "SENTINEL_UP__EXPOSE_UNAUTHENTICATED=true, or bind 127.0.0.1"
        )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Settings(BaseSettings):
    """All of Sentinel's configuration. Paths are relative to `home` unless absolute."""

    model_config = SettingsConfigDict(env_prefix="SENTINEL_", env_nested_delimiter="__", extra="forbid")

    home: Path = Field(default_factory=project_home)
    ledger_url: str = Field("", description="SQLAlchemy URL; default sqlite:///<home>/sentinel.db")
    mlflow_tracking_uri: str = Field("", description="default sqlite:///<home>/mlflow.db")
    prefect_api_url: str = Field("", description="Prefect server API; empty = standalone, no events (set by `sentinel up`).")
    reference_csv: Path | None = Field(
        None, description="Labeled CSV for the first champion of `sentinel up`; default the demo's IMDB reviews."
    )
    registered_model: str = "review-sentiment"
    drift_experiment: str = "sentinel-drift"
    training_experiment: str = "sentinel-training"

    intake: IntakePolicy = IntakePolicy()
    drift: DriftPolicy = DriftPolicy()
    gate: GatePolicy = GatePolicy()
    training: TrainingPolicy = TrainingPolicy()
    model: ModelParams = ModelParams()
    tune: TunePolicy = TunePolicy()
    up: UpPolicy = UpPolicy()
    services: dict | None = Field(None, exclude=True, description="Deprecated: the old name of `up`; read into `up` for one release.")

    @model_validator(mode="before")
    @classmethod
    def _renamed_groups(cls, data):
        """`[services]` / `SENTINEL_SERVICES__*` became `[up]` / `SENTINEL_UP__*` (the word named both
        the servers of `sentinel up` and the library's use cases). The old key still works, for one release."""
        if isinstance(data, dict) and data.get("services"):
            warnings.warn(
                "the settings group `services` is now `up`: rename [services] to [up] in sentinel.toml and "
                "SENTINEL_SERVICES__* to SENTINEL_UP__*; the old name stops working in the next release",
                SettingsDeprecation,
                stacklevel=2,
            )
            data = dict(data)
            data["up"] = {**dict(data.pop("services")), **dict(data.get("up") or {})}
        return data

    @model_validator(mode="after")
    def _fill_defaults(self) -> "Settings":
        self.home = self.home.resolve()
        if not self.ledger_url:
            self.ledger_url = f"sqlite:///{self.home / 'sentinel.db'}"
        if not self.mlflow_tracking_uri:
            self.mlflow_tracking_uri = f"sqlite:///{self.home / 'mlflow.db'}"
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Arguments first, then SENTINEL_* variables, then sentinel.toml in the project folder."""
        toml_file = project_home() / "sentinel.toml"
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls, toml_file=toml_file))

    # Folders of the runtime state; all under `home`, all ignored by git.
    @property
    def incoming_dir(self) -> Path:
        """The drop zone."""
        return self.home / "data" / "incoming"

    @property
    def quarantine_dir(self) -> Path:
        """Where rejected files wait beside their reasons."""
        return self.home / "data" / "quarantine"

    @property
    def batches_dir(self) -> Path:
        """The immutable copies of accepted batches."""
        return self.home / "data" / "batches"

    @property
    def reference_dir(self) -> Path:
        """The drift reference of each champion."""
        return self.home / "data" / "reference"

    @property
    def reports_dir(self) -> Path:
        """Drift reports (HTML)."""
        return self.home / "reports"

    @property
    def artifacts_dir(self) -> Path:
        """MLflow's artifact store on the embedded defaults."""
        return self.home / "mlartifacts"

    @property
    def evidently_dir(self) -> Path:
        """The Evidently workspace that `sentinel up` serves in the Evidently UI."""
        return self.home / "evidently"

    @property
    def prefect_home(self) -> Path:
        """The Prefect server's and clients' home of `sentinel up`."""
        return self.home / ".prefect"

    @property
    def state_path(self) -> Path:
        """Where `sentinel up` records the processes it started, for `sentinel status`."""
        return self.prefect_home / "sentinel-up.json"

    def ensure_dirs(self) -> None:
        """Create the runtime folders that are missing."""
        for folder in (self.incoming_dir, self.quarantine_dir, self.batches_dir, self.reference_dir, self.reports_dir):
            folder.mkdir(parents=True, exist_ok=True)


def load_settings(**overrides) -> Settings:
    """Read the settings once; callers pass the object on instead of reading the environment again."""
    return Settings(**overrides)


def redacted(url: str) -> str:
    """A URL fit to print or log: any password in it replaced by ***."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))
