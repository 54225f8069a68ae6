"""The flows' `Steps` (see `sentinel.steps`): each stage of a use case runs as a named Prefect task, so a
flow run's page shows the loop as a task graph, with each stage's time, state and logs."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from prefect import task
from prefect.cache_policies import NO_CACHE

T = TypeVar("T")


def as_task(name: str, label: str, fn: Callable[..., T], /, *args, **kwargs) -> T:
    """Run `fn` as the task `name`, whose run is called `label`. No cache and no stored result: every
    stage reads and writes the ledger, so running it again must run it again. The name is given as a
    callable because Prefect formats a string one with the task's parameters, and a file's name may
    hold braces."""
    stage = task(fn, name=name, task_run_name=lambda: label, cache_policy=NO_CACHE, persist_result=False)
    return stage(*args, **kwargs)
