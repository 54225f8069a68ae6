"""What adding one drift check's snapshot to the Evidently workspace costs, as the history grows: Sentinel's
`evidently_workspace.add_snapshot` against Evidently's own `Workspace(path).add_run` (the floor, and what
Sentinel did before), each adding one real drift snapshot to a workspace already holding N of them.
Target (issue 17, cost flat in history): Sentinel's figure the same at every N. Medians of interleaved runs.

    python bench/snapshot.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import interleaved  # noqa: E402

HISTORIES = (10, 100, 1000)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    from evidently.ui.workspace import Workspace

    from sentinel import demo, drift, evidently_workspace

    imdb = demo.reviews("imdb")
    reference = drift.with_descriptors(imdb.iloc[:2000])
    snapshot = drift.run_report(drift.with_descriptors(imdb.iloc[2000:2600]), reference)
    print(f"one drift snapshot of a 600-row batch against 2,000 rows; figures per added snapshot, {args.repeats} runs each")
    print(f"  {'snapshots already there':<26}{'Workspace.add_run (floor)':>28}{'Sentinel add_snapshot':>24}{'ratio':>8}")
    for history in HISTORIES:
        folder = Path(tempfile.mkdtemp(prefix=f"bench-snapshot-{history}-"))
        for i in range(history):
            evidently_workspace.add_snapshot(folder, drift.DESCRIPTORS, snapshot, f"past {i}")

        def evidently_own():
            workspace = Workspace(str(folder))
            [project] = workspace.search_project(evidently_workspace.PROJECT)
            workspace.add_run(project.id, snapshot, name="floor")

        times = interleaved(
            {"floor": evidently_own, "sentinel": lambda: evidently_workspace.add_snapshot(folder, drift.DESCRIPTORS, snapshot, "new")},
            args.repeats,
        )
        floor, ours = statistics.median(times["floor"]), statistics.median(times["sentinel"])
        print(f"  {history:<26,}{floor:>26.3f} s{ours:>22.3f} s{ours / floor:>8.2f}")


if __name__ == "__main__":
    main()
