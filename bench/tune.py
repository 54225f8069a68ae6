"""The model search at bootstrap against one fit of today's model (word-lr, C=4) on the same training rows
(the floor), for references of IMDB and Rotten Tomatoes reviews, interleaved; then the chosen model's
accuracy beside today's on unseen IMDB and Rotten Tomatoes rows. Targets (issue 15): search at most
4 x one fit; the chosen model at least as accurate as today's on both.

    python bench/tune.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import interleaved, report  # noqa: E402
from sentinel import demo, training, tuning  # noqa: E402
from sentinel.settings import ModelParams, TunePolicy  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    imdb, rotten = demo.reviews("imdb"), demo.reviews("rotten_tomatoes")
    unseen = {"imdb": imdb.iloc[20_000:23_000], "rotten_tomatoes": rotten.iloc[6_000:]}
    references = {"imdb 5,000": imdb.iloc[:5000], "imdb 20,000": imdb.iloc[:20_000], "rotten_tomatoes 5,000": rotten.iloc[:5000]}
    today = ModelParams()
    for name, rows in references.items():
        # the rows a bootstrap trains on: its held-out share is never searched
        train = training.assemble({"ref": rows}, {}, 0.2, 0).train
        times = interleaved(
            {
                "one fit of today's model": lambda: training.fit(train, today),
                "model search": lambda: tuning.search(train, today, TunePolicy(), "accuracy"),
            },
            args.repeats,
        )
        report(f"reference {name} ({len(train)} training rows)", times, floor="one fit of today's model")
        chosen = tuning.search(train, today, TunePolicy(), "accuracy").chosen
        for label, params in (("today's", today), (f"chosen ({tuning.name_of(chosen)})", chosen)):
            model = training.fit(train, params)
            scores = ", ".join(f"{held} {training.evaluate(model, frame).accuracy:.4f}" for held, frame in unseen.items())
            print(f"  {label:<44} unseen accuracy: {scores}")


if __name__ == "__main__":
    main()
