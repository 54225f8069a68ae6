"""Standalone `sentinel process` of one 600-row IMDB batch that raises no drift, each a cold process as a
person runs it, against a floor measured in the same run: a cold Python that imports pandas and
Evidently, reads the same reference and batch, and runs Evidently's text drift (`ValueDrift`) on them.
Target (issue 17): ratio at most 1.3. Prints medians of interleaved runs, and how many runs retrained
(a false alarm on stable data would make one a retrain, which this figure must not hide).

    python bench/process.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import interleaved, report  # noqa: E402

FLOOR = """
import sys
import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.metrics import ValueDrift
reference = pd.read_parquet(sys.argv[1], columns=["text"])
batch = pd.read_csv(sys.argv[2])[["text"]]
text = DataDefinition(text_columns=["text"])
Report([ValueDrift(column="text")]).run(Dataset.from_pandas(batch, data_definition=text), Dataset.from_pandas(reference, data_definition=text))
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    from sentinel import demo

    home = Path(tempfile.mkdtemp(prefix="bench-process-"))
    env = os.environ | {"SENTINEL_HOME": str(home)}
    subprocess.run([sys.executable, "-m", "sentinel.cli", "bootstrap", "--demo", "5000"], env=env, check=True, capture_output=True)
    from sentinel.ledger import Ledger
    from sentinel.settings import Settings

    settings = Settings(home=home)
    ledger = Ledger(settings.ledger_url)
    reference = next(m.reference_path for m in ledger.models(settings.registered_model) if m.reference_path)
    ledger.dispose()
    imdb = demo.reviews("imdb")
    batch_csv = home / "floor-batch.csv"
    imdb.iloc[20_000:20_600][["text", "label"]].to_csv(batch_csv, index=False)
    outcomes: list[str] = []
    offset = iter(range(10_000, 20_000, 600))

    def process() -> None:
        start = next(offset)
        demo.drop(imdb.iloc[start : start + 600], settings.incoming_dir, f"stable-{start}.csv")
        ran = subprocess.run([sys.executable, "-m", "sentinel.cli", "process", "--json"], env=env, capture_output=True, text=True)
        records = json.loads(ran.stdout) if ran.returncode == 0 else [{"decision": f"failed: {ran.stderr[-300:]}"}]
        outcomes.append(records[0].get("decision", "none") if records else "nothing")

    times = interleaved(
        {
            "floor: cold pandas + Evidently text drift": lambda: subprocess.run(
                [sys.executable, "-c", FLOOR, reference, str(batch_csv)], check=True, capture_output=True
            ),
            "sentinel process (one 600-row batch)": process,
        },
        args.repeats,
    )
    report("standalone `sentinel process` of a 600-row stable batch (cold processes; target ratio 1.3)", times, next(iter(times)))
    print(f"  decisions of the processed batches: {outcomes} ('none' = no retrain)")


if __name__ == "__main__":
    main()
