"""Errors a user can fix: the CLI prints their message on one line and exits non-zero. Kept free of
heavy imports, so the CLI can catch them without loading MLflow."""


class SentinelError(Exception):
    """A mistake or a missing precondition, with a message that says what to do."""

    exit_code = 1  # the CLI's exit code: 1 for what the user can fix here, others for a part that failed


class TamperedModel(RuntimeError):
    """The model's artifact no longer has the digest recorded when it was registered."""


class RegistryUnavailable(SentinelError):
    """MLflow did not answer, or answered with an error other than "not found": nothing can be concluded
    about the champion, so nothing is moved."""

    exit_code = 3


# Failures of a part Sentinel depends on, each with its own exit code so that a script can tell them
# apart: (module, class) → (exit code, what happened, what to do). Matched by name through sys.modules,
# since this module must not import MLflow, SQLAlchemy or Prefect to name their errors.
EXPECTED_FAILURES = (
    ("mlflow.exceptions", "MlflowException", 3, "MLflow failed", "check that the MLflow server runs (`sentinel status`) and try again"),
    (
        "sentinel.locks",
        "LockTimeout",
        4,
        "another Sentinel process holds the lock",
        "wait for it to finish (`sentinel status`), then try again",
    ),
    (
        "sqlalchemy.exc",
        "OperationalError",
        5,
        "the ledger's database is locked or unreachable",
        "check ledger_url and that the database server runs, then try again",
    ),
    (
        "httpx",
        "TransportError",
        6,
        "the Prefect API did not answer",
        "check prefect_api_url and that the Prefect server runs (`sentinel status`)",
    ),
)


def expected_failure(error: BaseException) -> tuple[int, str] | None:
    """For a failure of MLflow, a lock, the ledger's database or the Prefect API: the exit code and one
    line that says what happened and what to do. None for anything else (a bug: its traceback helps)."""
    import sys

    if isinstance(error, SentinelError):
        return error.exit_code, str(error)
    for module, name, code, what, fix in EXPECTED_FAILURES:
        kind = getattr(sys.modules.get(module), name, None)
        if kind is not None and isinstance(error, kind):
            detail = (str(error).strip().splitlines() or [type(error).__name__])[0][:300]
            return code, f"{what} ({detail}); {fix}"
    return None
