"""Put Sentinel's four deployments onto the process work pool `sentinel`: `python -m deployments.workers`.

`sentinel up` runs this once when `up.flow_runner` is "workers", then starts `up.workers`
Prefect workers that poll the pool (on other machines, start more with `prefect worker start --pool
sentinel`). The deployments are the ones `serve.py` serves, with the same triggers and schedules from
settings, loaded from this checkout, which is where the workers run them from.
"""

from __future__ import annotations

import sys
from pathlib import Path

from prefect import deploy
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.exceptions import ObjectNotFound

from deployments import notifications, serve
from sentinel.settings import load_settings
from sentinel.terminal import report_failure
from sentinel.up_state import WORK_POOL

CHECKOUT = Path(__file__).resolve().parents[1]


def ensure_pool() -> None:
    with get_client(sync_client=True) as client:
        try:
            client.read_work_pool(WORK_POOL)
        except ObjectNotFound:
            client.create_work_pool(WorkPoolCreate(name=WORK_POOL, type="process"))


def main() -> None:
    """Create the work pool and deploy onto it; a Prefect API that does not answer is one line."""
    try:
        settings = load_settings()
        notifications.configure(settings)
        ensure_pool()
        deploy(
            *serve.deployments(settings, source=CHECKOUT), work_pool_name=WORK_POOL, build=False, push=False, print_next_steps_message=False
        )
    except Exception as error:
        code = report_failure(error)
        if code is None:
            raise
        sys.exit(code)


if __name__ == "__main__":
    main()
