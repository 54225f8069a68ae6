"""What a replay costs beyond the work it cannot avoid. The `always` policy (a retrain on every batch) is
replayed over the demo's stream in this process, against the floor: for every batch, a bare Evidently
`ValueDrift(text)` report of the batch against the same reference rows, and a bare scikit-learn fit of
the same pipeline on the same number of training rows. Target: ratio <= 1.3.

A second floor adds the Evidently checks that every new champion's drift reference needs: its
`drift.calibration_draws` stable splits of the training rows, each a bare `ValueDrift(text)` of the
sizes `drift_reference.build_reference` uses. They are drift checks on the same rows that the decision code cannot
skip (the thresholds are learned from them), and most of a replay's cost beyond the first floor. Also
printed: the wall time of `sentinel demo --replay` (four policies, two processes), target <= 120 s."""

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
from sentinel import demo, drift_reference, replay, training  # noqa: E402
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

    policy = settings.drift

    def calibration(learned: pd.DataFrame) -> None:
        size, compared = drift_reference.calibration_sizes(len(learned), policy)
        for draw in range(policy.calibration_draws):
            order = learned.sample(frac=1.0, random_state=draw)
            Report([ValueDrift(column="text")]).run(_text(order.head(size)), _text(order.iloc[size : size + compared]))

    def floor(calibrated: bool) -> None:
        learned = reference.sample(frac=keep, random_state=0)
        if calibrated:
            calibration(learned)
        for batch in batches:
            Report([ValueDrift(column="text")]).run(_text(batch), _text(reference.head(policy.reference_rows)))
            learned = pd.concat([learned, batch.sample(frac=keep, random_state=0)], ignore_index=True)
            training.fit(learned, settings.model)
            if calibrated:
                calibration(learned)

    bare, calibrated = "floor: bare Evidently + bare fits", "floor + each reference's calibration checks"
    times: dict[str, list[float]] = {bare: [], calibrated: [], "replay of `always`": []}
    for _ in range(REPEATS):
        tick = time.perf_counter()
        floor(calibrated=False)
        times[bare].append(time.perf_counter() - tick)
        tick = time.perf_counter()
        floor(calibrated=True)
        times[calibrated].append(time.perf_counter() - tick)
        tick = time.perf_counter()
        replay.run_policy(stream, replay.policy("always"), settings)
        times["replay of `always`"].append(time.perf_counter() - tick)
    report(f"replay of {len(batches)} batches, a retrain on each", times, bare)
    ratio = statistics.median(times["replay of `always`"]) / statistics.median(times[calibrated])
    print(f"  replay of `always` against the floor with the calibration checks: ratio {ratio:.2f}")

    walls = []
    for _ in range(REPEATS):
        tick = time.perf_counter()
        cli = [sys.executable, "-m", "sentinel.cli", "demo", "--replay", "--out", str(folder / "out"), "--json"]
        subprocess.run(cli, cwd=folder, env={"SENTINEL_HOME": str(folder), "PATH": "/usr/bin:/bin"}, check=True, capture_output=True)
        walls.append(time.perf_counter() - tick)
    print(f"\nsentinel demo --replay (4 policies): median {statistics.median(walls):.1f} s wall ({REPEATS} runs, min {min(walls):.1f})")


if __name__ == "__main__":
    main()
