"""Named steps: the use cases run their stages (take in, check drift, assemble, fit, judge, register,
promote) through `app.steps`, so whoever runs them can watch each one. Standalone a step is a plain call;
the Prefect flows pass `flows._tasks.as_task`, which runs each as a named task, so a flow run's page shows
the loop as a task graph.

Why a hook and not flows that call the stages themselves: `process`, `replay` and the flows then run one
sequence of stages, with its locks and transactions in one place, and cannot drift apart."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeVar

T = TypeVar("T")


class Steps(Protocol):
    """How a use case runs its stages."""

    def __call__(self, name: str, label: str, fn: Callable[..., T], /, *args, **kwargs) -> T:
        """Run `fn(*args, **kwargs)` as the step `name` (stable: "fit"), labelled for this run by `label`
        ("fit retrain-b1+b2"), and return what it returns."""


def direct(name: str, label: str, fn: Callable[..., T], /, *args, **kwargs) -> T:
    """A step as a plain call: what the library does when nobody watches."""
    return fn(*args, **kwargs)
