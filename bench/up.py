"""`sentinel up` end to end, on a fresh project folder and free loopback ports:

1. start → every service healthy (first champion trained on 5,000 IMDB reviews included), then a restart;
2. file closed → drift verdict in the ledger, 1,000-row IMDB batches against the 5,000-row reference,
   one at a time, interleaved with the floor: a bare Evidently `ValueDrift(text)` on the same frames;
3. a burst of 100 files dropped at once: time to the last verdict and to the last decision, retrains;
4. peak memory of the whole process tree of `sentinel up` (PSS, and RSS as an upper bound) throughout.
Targets: healthy <= 60 s; latency median <= 5 s (goal 3 s); <= 2 retrains; peak <= 2 GB.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pandas as pd  # noqa: E402
from evidently import DataDefinition, Dataset, Report  # noqa: E402
from evidently.metrics import ValueDrift  # noqa: E402

from bench.common import print_breakdown, timed, tree_breakdown, tree_kb  # noqa: E402
from sentinel import demo  # noqa: E402
from tests.harness import UpProcess, settled, wait_for  # noqa: E402

ROUNDS = 11


class PeakMemory(threading.Thread):
    """Samples the tree every 0.2 s; keeps the peak and what each process held at that moment."""

    def __init__(self, root: int) -> None:
        super().__init__(daemon=True)
        self.root, self.pss, self.rss, self.at_peak, self.done = root, 0, 0, {}, threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.2):
            breakdown, (_, rss) = tree_breakdown(self.root), tree_kb(self.root)
            if sum(breakdown.values()) > self.pss:
                self.pss, self.at_peak = sum(breakdown.values()), breakdown
            self.rss = max(self.rss, rss)


def latency_rounds(project: UpProcess, rounds: int) -> tuple[list[float], list[float]]:
    """File closed -> verdict in the ledger for 1,000-row IMDB batches, each followed by the floor."""
    imdb = demo.reviews("imdb")
    reference = pd.read_parquet(next((project.home / "data" / "reference").glob("*.parquet")))
    incoming, ledger = project.settings.incoming_dir, project.ledger()
    text_only = DataDefinition(text_columns=["text"])
    latencies, floors = [], []
    for i in range(rounds):
        batch = imdb.iloc[5000 + i * 1000 : 6000 + i * 1000]
        name = f"latency-{i:02d}.csv"
        demo.drop(batch, incoming, name)
        closed = time.perf_counter()
        wait_for(lambda: settled(ledger, {name}), 120, name, poll=0.02)
        latencies.append(time.perf_counter() - closed)
        floors.append(
            timed(
                lambda: Report([ValueDrift(column="text")]).run(
                    Dataset.from_pandas(batch[["text"]], data_definition=text_only),
                    Dataset.from_pandas(reference[["text"]], data_definition=text_only),
                )
            )
        )
        time.sleep(1.0)
    ledger.dispose()
    return latencies, floors


def burst(project: UpProcess) -> None:
    """100 files dropped at once: time to the last verdict and to the last decision, and the retrains."""
    imdb, rotten = demo.reviews("imdb"), demo.reviews("rotten_tomatoes")
    incoming, ledger = project.settings.incoming_dir, project.ledger()
    runs_before = len(ledger.training_runs())
    staging = project.home / "staging"
    staging.mkdir()
    names = []
    for i in range(100):
        frame = imdb.iloc[20_000 + i * 50 : 20_050 + i * 50] if i % 2 else rotten.iloc[i * 80 : i * 80 + 80]
        names.append(f"burst-{i:03d}.csv")
        frame.to_csv(staging / names[-1], index=False)
    began = time.perf_counter()
    for name in names:
        (staging / name).rename(incoming / name)
    wait_for(lambda: settled(ledger, set(names)), 900, "the burst's verdicts", poll=0.2)
    verdicts = time.perf_counter() - began
    wait_for(lambda: not ledger.unanswered_drift(), 900, "the burst's retrains", poll=0.5)
    decided = time.perf_counter() - began
    burst_runs = ledger.training_runs()[runs_before:]
    accepted = [b for b in ledger.batches() if b.file_name in set(names) and b.status == "accepted"]
    print(
        f"  burst of 100 files: {len(accepted)} accepted once, last verdict after {verdicts:.1f} s, last decision after {decided:.1f} s, {len(burst_runs)} retrains (target <= 2)"
    )
    for run in burst_runs:
        print(f"    {run.run_name[:60]}: {len(run.batch_ids)} batches, {run.decision}")
    ledger.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="latency rounds (1,000-row batches)")
    parser.add_argument("--latency-only", action="store_true", help="stop after the latency rounds (no burst, no restart)")
    options = parser.parse_args()
    project = UpProcess(Path(tempfile.mkdtemp(prefix="sentinel-up-")))
    healthy_first = project.start()
    memory = PeakMemory(project.process.pid)
    memory.start()
    latencies, floors = latency_rounds(project, options.rounds)
    median, floor = statistics.median(latencies), statistics.median(floors)
    print(f"sentinel up, project {project.home}")
    print(f"  start -> all healthy, fresh (incl. first champion)  {healthy_first:6.1f} s   (target <= 60 s)")
    print(
        f"  file closed -> verdict in ledger, 1,000 rows        median {median:.2f} s  min {min(latencies):.2f}  max {max(latencies):.2f}  ({len(latencies)} runs)"
    )
    print(
        f"  floor: bare Evidently ValueDrift(text), same frames median {floor:.2f} s   ratio {median / floor:.2f}   (target median <= 5 s, goal 3 s)"
    )
    if options.latency_only:
        project.stop()
        return
    burst(project)
    memory.done.set()
    project.stop()
    print(f"  restart -> all healthy                              {project.start():6.1f} s")
    project.stop()
    print(
        f"  peak memory of the whole tree: {memory.pss / 1024:.0f} MB PSS, {memory.rss / 1024:.0f} MB RSS   (target <= 2048 MB); at the peak:"
    )
    print_breakdown(memory.at_peak)


if __name__ == "__main__":
    main()
