"""What a replay costs beyond the work it cannot avoid. The `always` policy (a retrain on every batch) is
replayed over the demo's stream in this process, against the floor: for every batch, a bare Evidently
`ValueDrift(text)` report of the batch against the same reference rows, and a bare scikit-learn fit of
the same pipeline on the same number of training rows. Target: ratio <= 1.3. Also printed: the wall
time of `sentinel demo --replay` (four policies, two processes), target <= 120 s on 2 cores."""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pandas as pd  # noqa: E402
from evidently import DataDefinition, Dataset, Report  # noqa: E402
from evidently.metrics import ValueDrift  # noqa: E402

from bench.common import report  # noqa: E402
from sentinel import demo, replay, training  # noqa: E402
from sentinel.settings import Settings  # noqa: E402

REPEATS = 3


def _text(frame: pd.DataFrame) -> Dataset:
    return Dataset.from_pandas(frame[["text"]].reset_index(drop=True), data_definition=DataDefinition(text_columns=["text"]))


def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="sentinel-bench-replay-"))
    paths = demo.replay_stream(folder)
    settings = Settings(home=folder / "project")
    stream = replay.open_stream(folder / "stream", paths["reference"], {"rotten": paths["rotten"]}, [], settings)
    reference = pd.read_csv(paths["reference"])
    batches = [pd.read_csv(f) for f in stream.files]
    keep = 1 - settings.gate.holdout_share

    def floor() -> None:
        learned = reference.sample(frac=keep, random_state=0)
        for batch in batches:
            Report([ValueDrift(column="text")]).run(_text(batch), _text(reference.head(settings.drift.reference_rows)))
            learned = pd.concat([learned, batch.sample(frac=keep, random_state=0)], ignore_index=True)
            training.fit(learned, settings.model)

    times: dict[str, list[float]] = {"floor: bare Evidently + bare fits": [], "replay of `always`": []}
    for _ in range(REPEATS):
        tick = time.perf_counter()
        floor()
        times["floor: bare Evidently + bare fits"].append(time.perf_counter() - tick)
        tick = time.perf_counter()
        replay.run_policy(stream, replay.policy("always"), settings)
        times["replay of `always`"].append(time.perf_counter() - tick)
    report(f"replay of {len(batches)} batches, a retrain on each", times, "floor: bare Evidently + bare fits")

    walls = []
    for _ in range(REPEATS):
        tick = time.perf_counter()
        cli = [sys.executable, "-m", "sentinel.cli", "demo", "--replay", "--out", str(folder / "out"), "--json"]
        subprocess.run(cli, cwd=folder, env={"SENTINEL_HOME": str(folder), "PATH": "/usr/bin:/bin"}, check=True, capture_output=True)
        walls.append(time.perf_counter() - tick)
    print(f"\nsentinel demo --replay (4 policies): median {statistics.median(walls):.1f} s wall ({REPEATS} runs, min {min(walls):.1f})")


if __name__ == "__main__":
    main()
