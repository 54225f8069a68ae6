"""The watcher with Prefect: drift checks of new batches run as drift-check flow runs in this warm
process. `sentinel watch` hands over to `python -m deployments.watch` when a Prefect API is set, and
`sentinel up` runs the same check in its watcher (`deployments/up.py`)."""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable

from sentinel.context import Sentinel
from sentinel.settings import load_settings
from sentinel.terminal import console, progress, report_failure, stop_like_ctrl_c

# Batches one drift-check flow run checks at most. Alone, a batch gets its own run; with a backlog, up to
# eight share one, each still its own named task and verdict: a flow run's own overhead was a quarter of
# the watcher's time per check under load with one check a run, a tenth with four (profiled), and the
# sweep takes in new files between runs (eight checks: about 4 s).
CHECKS_PER_RUN = 8


def inline_check(app: Sentinel, say: Callable[[str], None]) -> Callable[[str], list[str]]:
    """The watcher's drift check: the drift-check flow, run here in a warm process so the verdict does
    not wait for a runner to poll and a new process to import everything (5-8 s measured). Heartbeats
    are off for these runs: they exist to spot a crashed run process, and joining their thread cost
    ~1 s per run. If the Prefect server is down, the same check runs without it."""
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    from flows.drift_check import drift_check
    from sentinel.drift_checks import check_pending
    from sentinel.pools import ready_batches

    flow = drift_check.with_options(retries=0)

    def check(batch_id: str) -> list[str]:
        try:
            with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
                return flow(batch_id=batch_id, limit=CHECKS_PER_RUN)
        except Exception as error:
            if not ready_batches(app):
                raise
            say(f"drift-check flow failed ({type(error).__name__}: {error}); checking without Prefect")
            return check_pending(app, limit=1)

    return check


def main() -> None:
    """Watch the drop zone until Ctrl-C; each new batch is checked by a drift-check flow run."""
    from sentinel.watcher import Watcher

    try:
        app = Sentinel(load_settings())
    except Exception as error:
        code = report_failure(error)
        if code is None:
            raise
        sys.exit(code)
    os.environ.setdefault("PREFECT_API_URL", app.settings.prefect_api_url)
    stop_like_ctrl_c()
    console.print(f"watching {app.settings.incoming_dir} (Ctrl-C stops)")
    try:
        Watcher(app, check=inline_check(app, console.print), notify=progress).run(threading.Event())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
