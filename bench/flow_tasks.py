"""What the drift-check flow's tasks and artifact cost per batch, as `sentinel up`'s watcher runs it (a
warm process, heartbeats off), against a real local Prefect server. Three ways, interleaved, each on a
new stable 1,000-row IMDB batch against a 5,000-row reference:

- library: `check_pending` alone, no Prefect (the floor);
- one flow call: the flow as before issue 15 (its body one call, no task, no artifact);
- tasks + artifact: the flow as it is (the check a named task, the verdict a Markdown artifact).

Target (issue 15): tasks + artifact within 10 % of one flow call. Prints medians and ratios.

    python bench/flow_tasks.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import report  # noqa: E402
from bench.common import timed as bench_timed  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="bench-flow-tasks-"))
    os.environ["SENTINEL_HOME"] = str(home)  # what the flows' `project()` reads, as under `sentinel up`
    os.environ["PREFECT_HOME"] = str(home / ".prefect")
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"

    from prefect import flow
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    from flows._project import project
    from flows.drift_check import drift_check
    from sentinel import demo, drift, retraining
    from sentinel.context import Sentinel
    from sentinel.drift_checks import check_pending
    from sentinel.settings import load_settings
    from sentinel.steps import direct
    from sentinel.taking_in import take_in

    imdb = demo.reviews("imdb")
    settings = load_settings()
    app = Sentinel(settings)
    reference = home / "reference.csv"
    imdb.iloc[:5000].to_csv(reference, index=False)
    retraining.bootstrap(app, reference)
    drift.prepare()  # the watcher imports Evidently once at its start
    offset = iter(range(5000, 25_000, 1000))  # unseen rows for 6 rounds of 3, after 2 warm-ups

    def dropped() -> None:
        """A new stable batch, taken in (not timed: the watcher takes it in before the check)."""
        start = next(offset)
        demo.drop(imdb.iloc[start : start + 1000], settings.incoming_dir, f"stable-{start}.csv")
        take_in(app)

    @flow(name="drift-check-one-call")
    def one_call() -> list[str]:
        with project() as flow_app:
            flow_app.steps = direct
            return check_pending(flow_app, timeout=5, limit=1)

    tasks = drift_check.with_options(retries=0)
    timed = {
        "library (no Prefect)": lambda: check_pending(app, limit=1),
        "one flow call (before)": lambda: one_call(),
        "tasks + artifact (now)": lambda: tasks(limit=1),
    }

    times: dict[str, list[float]] = {name: [] for name in timed}
    with prefect_test_harness(), temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        for warm in (one_call, lambda: tasks(limit=1)):  # the first flow run of each pays Prefect's set-up
            dropped()
            warm()
        for _ in range(args.repeats):  # interleaved, so a noisy neighbour slows all three alike
            for name, check in timed.items():
                dropped()
                times[name].append(bench_timed(check))
    report("drift check of a stable 1,000-row batch, warm process (as the watcher of `sentinel up`)", times, floor="library (no Prefect)")
    app.close()


if __name__ == "__main__":
    main()
