"""Does a longer history cost more? The same project measured with 100 and with 5,000 past batches in
its ledger: a drift check of one 600-row batch in a warm process (`check_drift`, as `sentinel up`
runs it), and a cold `sentinel batches --json`. Target (issue 17): flat, i.e. the ratio of the long
history to the short one near 1 for the drift check; `batches` lists every batch, so it grows with
them, and its figure says by how much. Prints medians of interleaved runs.

    python bench/history.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.read_commands import SMALL, fill_ledger  # noqa: E402

HISTORIES = (100, 5000)


def project(history: int) -> Path:
    """A bootstrapped project whose ledger holds `history` past batches besides the reference."""
    home = Path(tempfile.mkdtemp(prefix=f"bench-history-{history}-"))
    env = os.environ | {"SENTINEL_HOME": str(home)} | SMALL
    subprocess.run([sys.executable, "-m", "sentinel.cli", "bootstrap", "--demo", "2000"], env=env, check=True, capture_output=True)
    fill_ledger(home, history)
    return home


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    os.environ.update(SMALL)
    from sentinel import demo, drift_checks, taking_in
    from sentinel.context import Sentinel
    from sentinel.settings import Settings

    homes = {n: project(n) for n in HISTORIES}
    apps = {n: Sentinel(Settings(home=home)) for n, home in homes.items()}
    imdb = demo.reviews("imdb")
    offsets = iter(range(5000, 25000, 600))
    checks: dict[int, list[float]] = {n: [] for n in HISTORIES}
    listings: dict[int, list[float]] = {n: [] for n in HISTORIES}
    for n, app in apps.items():  # one check each first: imports, worker and champion are warm from here on
        demo.drop(imdb.iloc[next(offsets) :][:600], app.settings.incoming_dir, "warm-up.csv")
        [outcome] = taking_in.take_in(app, checks_drift=False)
        drift_checks.check_drift(app, outcome.batch_id)
    for _ in range(args.repeats):
        start = next(offsets)
        for n, app in apps.items():
            demo.drop(imdb.iloc[start : start + 600], app.settings.incoming_dir, f"batch-{start}.csv")
            [outcome] = taking_in.take_in(app, checks_drift=False)
            began = time.perf_counter()
            drift_checks.check_drift(app, outcome.batch_id)
            checks[n].append(time.perf_counter() - began)
            env = os.environ | {"SENTINEL_HOME": str(homes[n])}
            began = time.perf_counter()
            subprocess.run([sys.executable, "-m", "sentinel.cli", "batches", "--json"], env=env, check=True, capture_output=True)
            listings[n].append(time.perf_counter() - began)
    short, long = HISTORIES
    print(f"\ncost against history: {short:,} vs {long:,} past batches in the ledger (medians of {args.repeats} interleaved runs)")
    for what, times in (("drift check of a 600-row batch (warm process)", checks), ("sentinel batches --json (cold process)", listings)):
        a, b = statistics.median(times[short]), statistics.median(times[long])
        print(f"  {what:<48} {a:7.3f} s  vs {b:7.3f} s   ratio {b / a:5.2f}")


if __name__ == "__main__":
    main()
