from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def project() -> Iterator:
    """The project of this process's settings (a flow run inherits them from whoever started it).
    Imported here, not at the top: the serve process imports every flow module and stays small.

    Unless `up.drift_worker` is set, a flow run does its drift work (text signal, drift references)
    in its own process: a worker process beside it would hold ~250 MB more to save a few seconds, and
    `sentinel up` must fit in 2 GB."""
    from flows._tasks import as_task
    from sentinel import drift_worker
    from sentinel.context import Sentinel
    from sentinel.settings import load_settings

    settings = load_settings()
    if not settings.up.drift_worker:
        drift_worker.work_in_process()
    app = Sentinel(settings, steps=as_task)  # each stage a named task: the run's page shows the loop
    try:
        yield app
    finally:
        app.close()
