"""Read commands on a project with 1,000 batches, each a cold `sentinel` process as a person runs it,
against a floor measured in the same run: a cold Python that imports SQLAlchemy and reads the same
ledger's batches. Targets (issue 17): the ledger's commands at most 1 s, those that ask MLflow at most
2.5 s, a hand `promote` or `rollback` at most 3 s (the first promotion of a held challenger timed alone,
then both in the rounds). Prints medians of interleaved runs, twice: with no MLflow server (the commands read the
project's SQLite MLflow store directly; `review` writes through MLflow's client), and with the store
served by an MLflow server that this script starts and records as `sentinel up` does (its state file),
which the commands then ask over REST.

    python bench/read_commands.py [--batches 1000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import interleaved, report, timed  # noqa: E402

SMALL = {"SENTINEL_DRIFT__REFERENCE_ROWS": "1000", "SENTINEL_DRIFT__CALIBRATION_DRAWS": "4"}


def fill_ledger(home: Path, batches: int) -> None:
    """`batches` accepted batches, each with a drift check, as the loop would have recorded them."""
    from sentinel.ledger import BatchRow, DriftCheckRow, Ledger
    from sentinel.settings import Settings

    ledger = Ledger(Settings(home=home).ledger_url)
    signals = [{"name": "text", "score": 0.51, "threshold": 0.56, "method": "domain classifier ROC AUC", "drifted": False}]
    with ledger.transaction() as session:
        for i in range(batches):
            batch_id = f"20261203-{i:06}-bench"
            session.add(
                BatchRow(
                    batch_id=batch_id,
                    file_name=f"batch-{i:04}.csv",
                    sha256=f"{i:064x}",
                    rows=200,
                    status="accepted",
                    stored_path=str(home / "data" / "batches" / f"{batch_id}.parquet"),
                    drift_status="clear",
                    source="default",
                )
            )
            session.flush()
            session.add(DriftCheckRow(batch_id=batch_id, reference_version="1", detected=False, signals=signals))
    ledger.dispose()


def sentinel_cli(env: dict[str, str], *words: str, check: bool = True) -> subprocess.CompletedProcess:
    """One cold `sentinel` command on the bench's project, its output captured as text."""
    return subprocess.run([sys.executable, "-m", "sentinel.cli", *words], env=env, capture_output=True, text=True, check=check, timeout=600)


def second_version(home: Path, env: dict[str, str]) -> float:
    """A second version, from a batch of the other site, so `promote` and `rollback` have two versions
    to move the champion between; returns the seconds of the first hand `promote` of it (it is held as
    challenger: a promotion that had to build its drift reference took 5.9 s on the demo's reference).
    Version 1 is champion again afterwards."""
    from sentinel import demo

    demo.drop(demo.reviews("rotten_tomatoes").iloc[:600], home / "data" / "incoming", "rotten.csv")
    sentinel_cli(env, "process")
    models = json.loads(sentinel_cli(env, "models", "--json").stdout)
    if "champion" in next(m for m in models if m["version"] == "2")["aliases"]:
        raise SystemExit("the retrain promoted version 2 itself; the first hand promote cannot be timed")
    seconds = timed(lambda: sentinel_cli(env, "promote", "2", "--reason", "bench"))
    sentinel_cli(env, "rollback", "--reason", "bench")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batches", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="bench-reads-"))
    env = os.environ | {"SENTINEL_HOME": str(home), "COLUMNS": "200"} | SMALL

    def sentinel(*words: str, check: bool = False) -> None:
        # check=False: `doctor` exits 1 on a project whose 1,000 batches have no files behind them
        sentinel_cli(env, *words, check=check)

    sentinel_cli(env, "bootstrap", "--demo", "2000")
    first_promote = second_version(home, env)
    print(f"a hand `promote` of the challenger a retrain held, the first time (target 3 s): {first_promote:.3f} s")
    fill_ledger(home, args.batches)
    floor = (
        "import sqlalchemy\n"
        f"engine = sqlalchemy.create_engine('sqlite:///{home / 'sentinel.db'}')\n"
        "with engine.connect() as c: rows = c.execute(sqlalchemy.text('select * from batches')).fetchall()\n"
    )
    candidates = {
        "floor: cold python + SQLAlchemy read of batches": lambda: subprocess.run([sys.executable, "-c", floor], check=True),
        "sentinel --help": lambda: sentinel("--help"),
        "sentinel batches --json": lambda: sentinel("batches", "--json"),
        "sentinel history --json": lambda: sentinel("history", "--json"),
        "sentinel show 1 --json": lambda: sentinel("show", "1", "--json"),
        "sentinel models --json (asks MLflow)": lambda: sentinel("models", "--json"),
        "sentinel doctor --json (asks MLflow)": lambda: sentinel("doctor", "--json"),
        "sentinel review 1 --approve (writes a tag)": lambda: sentinel("review", "1", "--approve", "--note", "bench"),
        "sentinel promote 2 (moves the alias)": lambda: sentinel("promote", "2", "--reason", "bench", check=True),
        "sentinel rollback (moves it back)": lambda: sentinel("rollback", "--reason", "bench", check=True),
    }
    title = f"read commands on a project with {args.batches:,} batches (cold processes; targets 1 s and 2.5 s)"
    report(
        f"{title}, no MLflow server (MLflow's SQLite store read directly; a write goes through its client)",
        interleaved(candidates, args.repeats),
        floor=next(iter(candidates)),
    )
    server = serve_mlflow(home)
    try:
        report(f"{title}, the store served as `sentinel up` serves it", interleaved(candidates, args.repeats), floor=next(iter(candidates)))
    finally:
        server.terminate()
        server.wait(timeout=30)


def serve_mlflow(home: Path) -> subprocess.Popen:
    """`mlflow server` on the project's store, recorded in the state file as `sentinel up` records its
    own (this process standing in for the supervisor), so read commands find it."""
    from sentinel.settings import Settings
    from sentinel.up_state import write_state
    from tests.harness import free_port

    url = f"http://127.0.0.1:{free_port()}"
    command = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", url.rsplit(":", 1)[1], "--workers", "1"]
    command += ["--backend-store-uri", f"sqlite:///{home / 'mlflow.db'}"]
    env = os.environ | {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/health", timeout=2).status == 200:
                break
        except OSError:
            time.sleep(0.5)
    else:
        server.kill()
        raise SystemExit("mlflow server did not start")
    write_state(Settings(home=home), {"mlflow": {"pid": server.pid, "url": url}})
    return server


if __name__ == "__main__":
    main()
