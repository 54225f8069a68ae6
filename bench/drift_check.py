"""Drift check of a 1,000-row batch against a 5,000-row reference, against a bare Evidently
`ValueDrift` report of the text column on the same frames (the floor). Target: ratio <= 1.2."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pandas as pd  # noqa: E402
from evidently import DataDefinition, Dataset, Report  # noqa: E402
from evidently.metrics import ValueDrift  # noqa: E402

from bench.common import interleaved, report  # noqa: E402
from sentinel import demo, drift, drift_reference, training  # noqa: E402
from sentinel.settings import DriftPolicy, ModelParams  # noqa: E402

REPEATS = 11


def main() -> None:
    imdb = demo.reviews("imdb")
    policy = DriftPolicy()
    training_rows = imdb.iloc[:6000]
    reference, calibration = drift_reference.build_reference(training_rows, 0.89, policy)
    batch = imdb.iloc[10_000:11_000].reset_index(drop=True)
    model = training.fit(imdb.iloc[:6000], ModelParams())
    text_only = DataDefinition(text_columns=["text"])
    folder = Path(tempfile.mkdtemp())
    print(f"reference {len(reference)} rows, batch {len(batch)} rows")

    def bare():
        Report([ValueDrift(column="text")]).run(
            Dataset.from_pandas(batch[["text"]], data_definition=text_only),
            Dataset.from_pandas(reference[["text"]], data_definition=text_only),
        )

    from evidently.descriptors import NonLetterCharacterPercentage, TextLength, WordCount

    described = DataDefinition(text_columns=["text"], categorical_columns=["label"])
    descriptors = [
        TextLength("text", alias="length"),
        WordCount("text", alias="words"),
        NonLetterCharacterPercentage("text", alias="non_letter"),
    ]

    def bare_all_signals():
        # The same five drift metrics in plain Evidently, descriptors computed on both frames every time.
        Report([ValueDrift(column=c) for c in drift.SIGNALS]).run(
            Dataset.from_pandas(batch[["text", "label"]], data_definition=described, descriptors=descriptors),
            Dataset.from_pandas(reference[["text", "label"]], data_definition=described, descriptors=descriptors),
        )

    times = interleaved(
        {
            "floor: bare Evidently ValueDrift(text)": bare,
            "bare Evidently, same five signals": bare_all_signals,
            "sentinel: all Evidently signals": lambda: drift.measure(batch, reference, calibration, None, policy),
            "sentinel: + champion performance": lambda: drift.measure(
                batch, reference, calibration, lambda f: model.predict(f[["text"]]), policy
            ),
            "sentinel: + performance + HTML report": lambda: drift.measure(
                batch, reference, calibration, lambda f: model.predict(f[["text"]]), policy, folder / "r.html"
            ),
        },
        REPEATS,
    )
    report("drift check, 1,000-row batch vs 5,000-row reference", times, "floor: bare Evidently ValueDrift(text)")

    # The text signal alone, as the worker computes it: Evidently's method against Sentinel's, whose
    # vectoriser reads each text's word counts from the process's cache. The reference is counted once
    # (warm after the first check); each run of Sentinel's gets a batch it has not seen, as under load.
    for rows in (200, 1000):
        against = reference[["text"]]
        fresh = (
            pd.DataFrame({"text": imdb["text"].iloc[start : start + rows].reset_index(drop=True)})
            for start in range(12_000, 25_000 - rows, rows)
        )
        current = next(fresh)

        def text_signal(method: str, current: pd.DataFrame):
            Report([ValueDrift(column="text", method=method)]).run(
                Dataset.from_pandas(current, data_definition=text_only), Dataset.from_pandas(against, data_definition=text_only)
            )

        drift.value_drift("text")  # registers Sentinel's method
        text_signal(drift.TEXT_METHOD, current)  # counts the reference's words
        times = interleaved(
            {
                "floor: Evidently abs_text_content_drift": lambda current=current: text_signal("abs_text_content_drift", current),
                "sentinel: counts cached, a new batch": lambda: text_signal(drift.TEXT_METHOD, next(fresh)),
            },
            REPEATS,
        )
        report(f"text signal alone, {rows}-row batch vs 5,000-row reference", times, "floor: Evidently abs_text_content_drift")


if __name__ == "__main__":
    main()
