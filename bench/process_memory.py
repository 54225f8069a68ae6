"""Peak memory (max RSS) of `sentinel process` with a 25,000-row reference: three Rotten Tomatoes
batches that drift and cause a retrain. The floor is a bare process that fits the same pipeline on
the same 25,000 reviews. Target: <= 1.5 GB."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sentinel import demo  # noqa: E402

FLOOR = """
import sys; sys.path.insert(0, {root!r})
from sentinel import demo, training
from sentinel.settings import ModelParams
training.fit(demo.reviews("imdb"), ModelParams())
"""


def peak_mb(args: list[str], env: dict) -> float:
    """Max RSS of one child process (each measured in a fresh parent so children do not mix)."""
    code = f"import resource, subprocess, sys; subprocess.run({args!r}, check=True, env={env!r}, stdout=subprocess.DEVNULL); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1]) / 1024


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
    print(f"floor: bare fit of the pipeline on 25,000 reviews   {floor:7.0f} MB")
    print(f"sentinel bootstrap on 25,000 reviews                {boot:7.0f} MB  ratio {boot / floor:.2f}")
    print(f"sentinel process (3 drifting batches + retrain)     {process:7.0f} MB  ratio {process / floor:.2f}  (target <= 1536 MB)")


if __name__ == "__main__":
    main()
