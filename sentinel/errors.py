"""Errors a user can fix: the CLI prints their message on one line and exits non-zero. Kept free of
heavy imports, so the CLI can catch them without loading MLflow."""

# Exit codes of the parts that can fail; 1 is a mistake the user can fix here.
MLFLOW, LOCK, DATABASE, PREFECT = 3, 4, 5, 6


class SentinelError(Exception):
    """A mistake or a missing precondition, with a message that says what to do."""

    exit_code = 1  # the CLI's exit code: 1 for what the user can fix here, others for a part that failed


class TamperedModel(RuntimeError):
    """The model's artifact no longer has the digest recorded when it was registered."""


class RegistryUnavailable(SentinelError):
    """MLflow did not answer, or answered with an error other than "not found": nothing can be concluded
    about the champion, so nothing is moved."""

    exit_code = MLFLOW


# Failures of a part Sentinel depends on, each with its own exit code so that a script can tell them
# apart: (module, class, how its message begins or "") → (exit code, what happened, what to do). Matched
# by name through sys.modules, since this module must not import MLflow, SQLAlchemy or Prefect to name
# their errors (an error of a module never imported cannot have been raised).
EXPECTED_FAILURES = (
    ("mlflow.exceptions", "MlflowException", "", MLFLOW, "MLflow failed", "check that the MLflow server runs (`sentinel status`)"),
    ("sentinel.locks", "LockTimeout", "", LOCK, "another Sentinel process holds the lock", "wait for it to finish (`sentinel status`)"),
    (
        "sqlalchemy.exc",
        "OperationalError",
        "",
        DATABASE,
        "the ledger's database is locked or unreachable",
        "check ledger_url and its server",
    ),
    (
        "httpx",
        "TransportError",
        "",
        PREFECT,
        "the Prefect API did not answer",
        "check prefect_api_url and the Prefect server (`sentinel status`)",
    ),
    # Prefect's own words when its client cannot reach the API before a flow run.
    (
        "prefect",
        "RuntimeError",
        "Failed to reach API",
        PREFECT,
        "the Prefect API did not answer",
        "check prefect_api_url and the Prefect server",
    ),
)


def expected_failure(error: BaseException) -> tuple[int, str] | None:
    """For a failure of MLflow, a lock, the ledger's database or the Prefect API: the exit code and one
    line that says what happened and what to do. None for anything else (a bug: its traceback helps)."""
    import builtins
    import sys

    if isinstance(error, SentinelError):
        return error.exit_code, str(error)
    message = " ".join(str(error).split())
    for module, name, begins, code, what, fix in EXPECTED_FAILURES:
        if module not in sys.modules:
            continue
        kind = getattr(sys.modules[module], name, None) or getattr(builtins, name, None)
        if isinstance(kind, type) and isinstance(error, kind) and message.startswith(begins):
            return code, f"{what} ({message[:300] or type(error).__name__}); {fix}, then try again"
    return None
