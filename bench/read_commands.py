"""Read commands on a project with 1,000 batches, each a cold `sentinel` process as a person runs it,
against a floor measured in the same run: a cold Python that imports SQLAlchemy and reads the same
ledger's batches. Targets (issue 17): the ledger's commands at most 1 s, those that ask MLflow at most
2.5 s. Prints medians of interleaved runs, twice: with no MLflow server (the commands read the
project's SQLite MLflow store directly; `review` writes through MLflow's client), and with the store
served by an MLflow server that this script starts and records as `sentinel up` does (its state file),
which the commands then ask over REST.

    python bench/read_commands.py [--batches 1000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import interleaved, report  # noqa: E402

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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batches", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="bench-reads-"))
    env = os.environ | {"SENTINEL_HOME": str(home), "COLUMNS": "200"} | SMALL

    def sentinel(*words: str) -> None:
        subprocess.run([sys.executable, "-m", "sentinel.cli", *words], env=env, capture_output=True, check=False, timeout=600)

    subprocess.run([sys.executable, "-m", "sentinel.cli", "bootstrap", "--demo", "2000"], env=env, check=True, capture_output=True)
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
