"""Peak memory of `sentinel process` with a 25,000-row reference: three Rotten Tomatoes batches that
drift and cause a retrain. Memory is summed over the whole process tree (the text-drift worker and its
fork server included), sampled every 50 ms: PSS (shared pages split fairly) and RSS (shared pages
counted in every process, an upper bound). The floor is a bare process that fits the same pipeline on
the same 25,000 reviews. Target: <= 1.5 GB."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import tree_kb  # noqa: E402
from sentinel import demo  # noqa: E402

FLOOR = """
import sys; sys.path.insert(0, {root!r})
from sentinel import demo, training
from sentinel.settings import ModelParams
training.fit(demo.reviews("imdb"), ModelParams())
"""


def peak_mb(args: list[str], env: dict) -> tuple[float, float]:
    process = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak_pss = peak_rss = 0
    while process.poll() is None:
        pss, rss = tree_kb(process.pid)
        peak_pss, peak_rss = max(peak_pss, pss), max(peak_rss, rss)
        time.sleep(0.05)
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed with exit code {process.returncode}")
    return peak_pss / 1024, peak_rss / 1024


def main() -> None:
    root = str(Path(__file__).resolve().parent.parent)
    home = Path(tempfile.mkdtemp(prefix="sentinel-mem-"))
    env = dict(os.environ, SENTINEL_HOME=str(home), SENTINEL_INTAKE__SETTLE_SECONDS="0.1")
    imdb, rotten = demo.reviews("imdb"), demo.reviews("rotten_tomatoes")
    reference = home / "reference.csv"
    imdb.to_csv(reference, index=False)
    cli = [sys.executable, "-m", "sentinel.cli"]
    boot = peak_mb([*cli, "bootstrap", "--reference", str(reference)], env)
    for i in range(3):
        demo.drop(rotten.iloc[i * 1000 : (i + 1) * 1000], home / "data" / "incoming", f"rotten-{i}.csv")
    process = peak_mb([*cli, "process"], env)
    floor = peak_mb([sys.executable, "-c", FLOOR.format(root=root)], env)
    print(f"{'':52} {'PSS':>8} {'RSS':>8}  ratio (PSS)")
    print(f"{'floor: bare fit of the pipeline on 25,000 reviews':52} {floor[0]:6.0f}MB {floor[1]:6.0f}MB")
    print(f"{'sentinel bootstrap on 25,000 reviews':52} {boot[0]:6.0f}MB {boot[1]:6.0f}MB  {boot[0] / floor[0]:.2f}")
    print(
        f"{'sentinel process (3 drifting batches + retrain)':52} {process[0]:6.0f}MB {process[1]:6.0f}MB  {process[0] / floor[0]:.2f}  (target <= 1536 MB)"
    )


if __name__ == "__main__":
    main()
