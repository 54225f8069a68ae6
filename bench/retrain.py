"""Retrain on 25,000 reviews (22,000 IMDB the champion learned + 3,000 Rotten Tomatoes) against a bare
scikit-learn fit + predict of the same pipeline on the same rows (the floor). Targets: ratio <= 1.3,
under 20 s on 2 cores, IMDB hold-out accuracy >= 0.89."""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pandas as pd  # noqa: E402

from sentinel import demo, drift_checks, retraining, taking_in, training  # noqa: E402
from sentinel.context import Sentinel  # noqa: E402
from sentinel.settings import Settings  # noqa: E402

REPEATS = 3


def main() -> None:
    imdb, rotten = demo.reviews("imdb"), demo.reviews("rotten_tomatoes")
    home = Path(tempfile.mkdtemp(prefix="sentinel-bench-"))
    app = Sentinel(Settings(home=home, intake={"settle_seconds": 0.05}))
    reference = home / "reference.csv"
    imdb.head(22_000).to_csv(reference, index=False)
    tick = time.perf_counter()
    retraining.bootstrap(app, reference)
    print(f"bootstrap on 22,000 rows (train, register, calibrate): {time.perf_counter() - tick:.1f} s")
    for i in range(3):
        demo.drop(rotten.iloc[i * 1000 : (i + 1) * 1000], app.settings.incoming_dir, f"rotten-{i}.csv")
    taking_in.take_in(app)
    for batch in app.ledger.batches_awaiting_drift_check():
        drift_checks.check_drift(app, batch.batch_id)

    champion = app.champion()
    data = retraining.training_data(app, champion)
    held = pd.concat([data.holdout_new, data.holdout_reference], ignore_index=True)
    print(f"{len(data.learned_batches)} batches: {len(data.train):,} rows trained on, {len(held):,} held out for the gate")

    floor, sentinel, accuracy = [], [], []
    for _ in range(REPEATS):
        tick = time.perf_counter()
        model = training.fit(data.train, app.settings.model)
        model.predict(held[["text"]])
        floor.append(time.perf_counter() - tick)
        tick = time.perf_counter()
        # Gate against the champion of the moment: a promotion in one round makes it the next round's.
        row = retraining._train_and_register(app, data, run_name="bench-retrain", champion=app.champion(), actor="bench")
        sentinel.append(time.perf_counter() - tick)
        accuracy.append(training.evaluate(app.load_model(row), data.holdout_reference).accuracy)
        print(
            f"  round: floor {floor[-1]:.2f} s, sentinel retrain {sentinel[-1]:.2f} s ({row.decision}; a promotion includes the new drift reference)"
        )
    f, s = statistics.median(floor), statistics.median(sentinel)
    print(f"\nretrain, median of {REPEATS}: floor (bare fit + predict) {f:.2f} s; sentinel retrain {s:.2f} s; ratio {s / f:.2f}")
    print(f"IMDB hold-out accuracy of the retrained model: median {statistics.median(accuracy):.4f}")


if __name__ == "__main__":
    main()
