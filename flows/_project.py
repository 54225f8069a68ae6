from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def project() -> Iterator:
    """The project of this process's settings (a flow run inherits them from whoever started it).
    Imported here, not at the top: the serve process imports every flow module and stays small.

    A flow run in its own process does its drift work (text signal, drift references) there: a worker
    process beside it would hold ~250 MB more to save a few seconds, and `sentinel up` must fit in 2 GB.
    A flow run inside the watcher of `sentinel up`, which checks every batch, uses the watcher's worker
    (`up.drift_worker`)."""
    from flows._tasks import as_task
    from sentinel import drift_worker
    from sentinel.context import Sentinel
    from sentinel.settings import load_settings

    settings = load_settings()
    if not drift_worker.started_here():
        drift_worker.work_in_process()
    app = Sentinel(settings, steps=as_task)  # each stage a named task: the run's page shows the loop
    try:
        yield app
    finally:
        app.close()
