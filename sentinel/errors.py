"""Errors a user can fix: the CLI prints their message on one line and exits non-zero. Kept free of
heavy imports, so the CLI can catch them without loading MLflow."""


class SentinelError(Exception):
    """A mistake or a missing precondition, with a message that says what to do."""


class TamperedModel(RuntimeError):
    """The model's artifact no longer has the digest recorded when it was registered."""
