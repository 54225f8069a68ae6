"""Errors a user can fix: the CLI prints their message on one line and exits non-zero."""


class SentinelError(Exception):
    """A mistake or a missing precondition, with a message that says what to do."""
