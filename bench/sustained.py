"""Sustained load on `sentinel up`: 1,000 batches of 200 rows dropped at an even pace over 10 minutes
(every tenth batch Rotten Tomatoes, so drift is detected and retrains happen), with the ledger on SQLite
and then on PostgreSQL (127.0.0.1:5432, a database made for the run), side by side.

Per run: every file taken in exactly once and checked once; p50/p95/max latency from the drop to the
drift verdict in the ledger, as a ratio to the floor (a bare Evidently `ValueDrift(text)` on the same
200-row batch against the same reference, measured in the same run); the backlog (files in the drop zone
plus batches awaiting their check), retrains and the PSS of the whole `sentinel up` tree every 30 s;
the time until the last verdict and until the last retrain after the last drop.

Throughput is the checks per second from the first drop to the last verdict, so it is a capacity only
when the offered rate is above it (a backlog all along). Its floor is bare Evidently on the same rows and
cores, measured: one process per core, each running bare `ValueDrift(text)` checks of the load's own
batches, started together (before and after the load); and again with OpenBLAS on one thread, as
Sentinel's drift worker runs it (bare Evidently's second BLAS thread spins through each check); and both
ways for the whole check Sentinel asks of Evidently (the descriptors, the five signals' `ValueDrift`, the
HTML report: `bare_full_check`), which measures what Sentinel adds around Evidently. It is printed beside 1 / floor and cores / floor,
the throughput two cores would have if they doubled one core's, which they need not (two bare processes
here each ran at about 0.9 of one alone, median of six runs; on vCPUs that share a physical core, less).

    .venv/bin/python bench/sustained.py [--ledger sqlite|postgresql|both] [--batches N] [--minutes M | --rate R] [--keep-home]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pandas as pd  # noqa: E402
from evidently import DataDefinition, Dataset, Report  # noqa: E402
from evidently.metrics import ValueDrift  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402

from bench.common import print_breakdown, timed, tree_breakdown, tree_cpu, tree_high_water  # noqa: E402
from sentinel import demo, intake  # noqa: E402
from sentinel.drift import DESCRIPTORS  # noqa: E402
from sentinel.drift_worker import ONE_BLAS_THREAD  # noqa: E402
from tests.harness import UpProcess, wait_for  # noqa: E402

POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
ROWS = 200
CORES = len(os.sched_getaffinity(0))


def batches(count: int) -> list[tuple[str, pd.DataFrame]]:
    """Distinct bytes for every file: rows sampled from the reviews the first champion did not learn."""
    imdb, rotten = demo.reviews("imdb").iloc[5000:], demo.reviews("rotten_tomatoes")
    return [(f"load-{i:04d}.csv", (rotten if i % 10 == 9 else imdb).sample(ROWS, random_state=i)) for i in range(count)]


def bare_check(sample: pd.DataFrame, reference: pd.DataFrame) -> None:
    text_only = DataDefinition(text_columns=["text"])
    Report([ValueDrift(column="text")]).run(
        Dataset.from_pandas(sample[["text"]], data_definition=text_only),
        Dataset.from_pandas(reference[["text"]], data_definition=text_only),
    )


def bare_full_check(sample: pd.DataFrame, reference: pd.DataFrame, report: Path) -> None:
    """The check Sentinel asks of Evidently for each batch, in bare Evidently: the batch's descriptors,
    a `ValueDrift` of the text, the label and each descriptor against the reference (which carries its
    descriptors, as Sentinel stores it), and the snapshot kept as JSON, as Evidently's workspace writes it
    (`LocalState.write_snapshot`; a check keeps it, not the HTML page, by default). Without what Sentinel
    adds around it (the champion's predictions, the MLflow run, the ledger, the Prefect task)."""
    from evidently.descriptors import NonLetterCharacterPercentage, TextLength, WordCount
    from evidently.legacy.utils import NumpyEncoder

    columns = ["text", "label", *DESCRIPTORS]
    definition = DataDefinition(text_columns=["text"], categorical_columns=["label"], numerical_columns=list(DESCRIPTORS))
    described = Dataset.from_pandas(
        sample[["text", "label"]].reset_index(drop=True),
        data_definition=DataDefinition(text_columns=["text"], categorical_columns=["label"]),
        descriptors=[
            TextLength("text", alias="length"),
            WordCount("text", alias="words"),
            NonLetterCharacterPercentage("text", alias="non_letter"),
        ],
    ).as_dataframe()[columns]
    snapshot = Report([ValueDrift(column=c) for c in columns]).run(
        Dataset.from_pandas(described, data_definition=definition), Dataset.from_pandas(reference[columns], data_definition=definition)
    )
    with report.open("w") as out:
        json.dump(snapshot.to_snapshot_model().dict(), out, cls=NumpyEncoder)


def floor_samples(reference: pd.DataFrame, sample: pd.DataFrame, repeats: int = 5) -> list[float]:
    return [timed(lambda: bare_check(sample, reference)) for _ in range(repeats)]


PARALLEL_CHECKS = 8  # bare checks per process in the measured floor of both cores
# The floors of both cores, each measured before and after the load: (label, `parallel_floor` arguments).
FLOORS = {
    "parallel_runs": (f"bare checks/s on {CORES} cores", {}),
    "parallel_one_thread": ("  the same, one BLAS thread", {"env": ONE_BLAS_THREAD}),
    "parallel_full": ("bare full checks/s", {"full": True}),
    "parallel_full_one_thread": ("  the same, one BLAS thread", {"env": ONE_BLAS_THREAD, "full": True}),
}


def parallel_floor(
    reference: Path, work: list[tuple[str, pd.DataFrame]], folder: Path, env: dict[str, str] | None = None, full: bool = False
) -> float:
    """Bare Evidently checks per second on this machine's cores, measured: one process per core, each
    importing Evidently first and then, all released together, checking `PARALLEL_CHECKS` of the load's
    batches against the reference. Checks done over the time until the last process is done. `env` is
    laid over each process's environment (`ONE_BLAS_THREAD`: as Sentinel's drift worker runs); `full`:
    each check is `bare_full_check` instead of the text's `ValueDrift` alone."""
    samples = folder / "floor-batches.parquet"
    pd.concat([frame.assign(batch=i) for i, (_, frame) in enumerate(work[: CORES * PARALLEL_CHECKS])]).to_parquet(samples)
    command = [sys.executable, __file__, "--floor-process", str(reference), str(samples), "full" if full else "text"]
    processes = [
        subprocess.Popen(
            [*command, str(i)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1, env=os.environ | (env or {})
        )
        for i in range(CORES)
    ]
    for process in processes:
        assert process.stdout.readline().strip() == "ready"
    for process in processes:
        process.stdin.write("go\n")
        process.stdin.flush()
    seconds = max(float(process.stdout.readline()) for process in processes)
    for process in processes:
        process.wait()
    return CORES * PARALLEL_CHECKS / seconds


def floor_process(reference: str, samples: str, what: str, index: int) -> None:
    """One process of `parallel_floor`: imports done, it waits for the word, then times its checks."""
    frame, batches = pd.read_parquet(reference), pd.read_parquet(samples)
    mine = [batches[batches["batch"] == b] for b in range(index * PARALLEL_CHECKS, (index + 1) * PARALLEL_CHECKS)]
    report = Path(samples).with_name(f"floor-report-{index}.json")
    check = (lambda sample: bare_full_check(sample, frame, report)) if what == "full" else (lambda sample: bare_check(sample, frame))
    check(mine[0])  # warm: the first check of a process pays one-off set-up
    print("ready", flush=True)
    sys.stdin.readline()
    print(sum(timed(lambda sample=sample: check(sample)) for sample in mine), flush=True)


class Sampler(threading.Thread):
    def __init__(self, project: UpProcess, every: float = 30.0) -> None:
        super().__init__(daemon=True)
        self.project, self.every, self.rows, self.peak, self.done = project, every, [], 0, threading.Event()
        self.at_peak: dict[str, int] = {}  # PSS by what each process runs, in the sample of the peak
        self.largest: dict[str, int] = {}  # the largest PSS each kind of process reached in any sample
        self.high_water: dict[str, int] = {}  # the peak RSS each kind of process reached, from the kernel
        self.began = time.monotonic()

    def run(self) -> None:
        ledger = self.project.ledger()
        try:
            while True:
                # One sample gives both the total and its parts: a breakdown read after the total
                # missed a retrain's short peak and summed to less than the peak it explained.
                breakdown = tree_breakdown(self.project.process.pid)
                pss = sum(breakdown.values())
                if pss > self.peak:
                    self.peak, self.at_peak = pss, breakdown
                for label, kb in breakdown.items():
                    self.largest[label] = max(kb, self.largest.get(label, 0))
                for label, kb in tree_high_water(self.project.process.pid).items():
                    self.high_water[label] = max(kb, self.high_water.get(label, 0))
                if self.done.is_set() or not self.rows or time.monotonic() - self.rows[-1][0] - self.began >= self.every:
                    files = len(intake.pending_files(self.project.settings))
                    awaiting = len(ledger.batches_awaiting_drift_check())
                    self.rows.append((time.monotonic() - self.began, files + awaiting, len(ledger.training_runs()) - 1, pss / 1024))
                if self.done.wait(1.0):
                    return
        finally:
            ledger.dispose()


def run(kind: str, count: int, minutes: float, keep_home: bool = False) -> dict:
    home = Path(tempfile.mkdtemp(prefix=f"sentinel-load-{kind}-"))
    env = {}
    database = None
    if kind == "postgresql":
        database = f"sentinel_load_{uuid.uuid4().hex[:8]}"
        with create_engine(POSTGRES, isolation_level="AUTOCOMMIT").connect() as connection:
            connection.execute(text(f'create database "{database}"'))
        env["SENTINEL_LEDGER_URL"] = POSTGRES.rsplit("/", 1)[0] + f"/{database}"
    project = UpProcess(home, **env)
    project.start()
    try:
        work = batches(count)
        reference_file = next((home / "data" / "reference").glob("*.parquet"))
        reference = pd.read_parquet(reference_file)
        # Measured before the load and again once `up` is idle after it, so the start-up's own work (or a
        # slow spell of the shared machine) does not make the floor, and with it every ratio, look different.
        floors = floor_samples(reference, work[0][1])
        parallel = {key: [parallel_floor(reference_file, work, home, **how)] for key, (_, how) in FLOORS.items()}
        sampler = Sampler(project)
        sampler.start()
        dropped: dict[str, dt.datetime] = {}
        pace = minutes * 60 / count
        cpu_before = tree_cpu(project.process.pid)
        start = time.monotonic()
        for i, (name, frame) in enumerate(work):
            time.sleep(max(0.0, start + i * pace - time.monotonic()))
            demo.drop(frame, project.settings.incoming_dir, name)
            dropped[name] = dt.datetime.now(dt.timezone.utc)
        last_drop = time.monotonic()
        ledger = project.ledger()

        def verdicts() -> dict[str, list]:
            rows = {b.file_name: b for b in ledger.batches() if b.file_name in dropped}
            return rows if len(rows) == count and all(b.drift_status != "pending" for b in rows.values()) else {}

        rows = wait_for(verdicts, 3600, "every verdict", poll=2.0)
        drained = time.monotonic() - last_drop
        cpu = {k: v - cpu_before.get(k, 0.0) for k, v in tree_cpu(project.process.pid).items()}
        throughput = count / (time.monotonic() - start)
        wait_for(lambda: not ledger.unanswered_drift(), 1800, "the last retrain", poll=2.0)
        settled_after = time.monotonic() - last_drop
        floors += floor_samples(reference, work[0][1])
        for key, (_, how) in FLOORS.items():
            parallel[key].append(parallel_floor(reference_file, work, home, **how))
        sampler.done.set()
        sampler.join()
        latencies, checks = [], 0
        for name, batch in rows.items():
            found = ledger.drift_checks(batch.batch_id)
            checks += len(found)
            checked = found[0].checked_at.replace(tzinfo=dt.timezone.utc)
            latencies.append((checked - dropped[name]).total_seconds())
        runs = ledger.training_runs()[1:]
        ledger.dispose()
    finally:
        project.stop()
        if not keep_home:  # each check leaves its HTML report twice: about 2 GB for 300 batches
            shutil.rmtree(home, ignore_errors=True)
        if database:
            with create_engine(POSTGRES, isolation_level="AUTOCOMMIT").connect() as connection:
                connection.execute(text(f'drop database if exists "{database}" with (force)'))
    latencies.sort()
    return {
        "kind": kind,
        "accepted": sum(b.status == "accepted" for b in rows.values()),
        "checks": checks,
        "floor": statistics.median(floors),
        "floor_before": statistics.median(floors[:5]),
        "floor_after": statistics.median(floors[5:]),
        **parallel,
        "p50": statistics.median(latencies),
        "p95": latencies[int(0.95 * (len(latencies) - 1))],
        "max": latencies[-1],
        "retrains": len(runs),
        "decisions": ", ".join(r.decision for r in runs),
        "drained": drained,
        "throughput": throughput,
        "settled": settled_after,
        "peak_mb": sampler.peak / 1024,
        "at_peak": sampler.at_peak,
        "largest": sampler.largest,
        "high_water": sampler.high_water,
        "cpu": cpu,
        "samples": sampler.rows,
    }


def main() -> None:
    if sys.argv[1:2] == ["--floor-process"]:
        return floor_process(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ledger", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--batches", type=int, default=1000)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=float, help="batches offered per second (instead of --minutes)")
    parser.add_argument("--keep-home", action="store_true", help="keep the project `up` ran in (removed by default)")
    options = parser.parse_args()
    if options.rate:
        options.minutes = options.batches / options.rate / 60
    kinds = ["sqlite", "postgresql"] if options.ledger == "both" else [options.ledger]
    results = []
    for kind in kinds:
        result = run(kind, options.batches, options.minutes, options.keep_home)
        results.append(result)
        print(f"\n{kind}: time after the first drop (s), backlog (files + checks waiting), retrains so far, PSS of the tree (MB)")
        for at, backlog, retrains, pss in result["samples"]:
            print(f"  {at:7.0f}  {backlog:5d}  {retrains:3d}  {pss:7.0f}")
    print(
        f"\n{options.batches} batches of {ROWS} rows over {options.minutes:g} min ({options.batches / options.minutes / 60:.2f} per second)"
    )
    print(f"{'':28}" + "".join(f"{r['kind']:>14}" for r in results))
    rows = [
        ("accepted / drift checks", lambda r: f"{r['accepted']}/{r['checks']}"),
        ("floor: bare ValueDrift (s)", lambda r: f"{r['floor']:.2f}"),
        ("  before / after the load", lambda r: f"{r['floor_before']:.2f} / {r['floor_after']:.2f}"),
        ("latency p50 (s)", lambda r: f"{r['p50']:.1f}"),
        ("  ratio to the floor", lambda r: f"{r['p50'] / r['floor']:.1f}"),
        ("throughput (checks/s)", lambda r: f"{r['throughput']:.2f}"),
        ("  ratio to 1 / floor", lambda r: f"{r['throughput'] * r['floor']:.2f}"),
        (f"  ratio to {CORES} / floor", lambda r: f"{r['throughput'] * r['floor'] / CORES:.2f}"),
        *[
            row
            for key, (label, _) in FLOORS.items()
            for row in (
                (label, lambda r, key=key: " / ".join(f"{p:.2f}" for p in r[key])),
                ("  ratio to their mean", lambda r, key=key: f"{r['throughput'] / statistics.mean(r[key]):.2f}"),
            )
        ],
        ("latency p95 (s)", lambda r: f"{r['p95']:.1f}"),
        ("latency max (s)", lambda r: f"{r['max']:.1f}"),
        ("last verdict after last drop", lambda r: f"{r['drained']:.0f} s"),
        ("last retrain after last drop", lambda r: f"{r['settled']:.0f} s"),
        ("retrains", lambda r: str(r["retrains"])),
        ("peak PSS (MB)", lambda r: f"{r['peak_mb']:.0f}"),
        ("max backlog", lambda r: str(max(s[1] for s in r["samples"]))),
    ]
    for label, show in rows:
        print(f"{label:28}" + "".join(f"{show(r):>14}" for r in results))
    for r in results:
        print(f"{r['kind']} decisions: {r['decisions']}")
        print(f"{r['kind']}: CPU from the first drop to the last verdict, per check, as a ratio to the floor")
        for label, seconds in sorted(r["cpu"].items(), key=lambda item: -item[1]):
            if seconds >= 0.5:
                per_check = seconds / max(1, r["checks"])
                print(f"  {per_check:6.3f} s  {per_check / r['floor']:5.2f}  {label}")
        # What bounds the throughput: the CPU of a check over every process, against the cores. Busy
        # cores near 100 % mean less work per check is the only way up; well below, a process waits.
        total = sum(r["cpu"].values()) / max(1, r["checks"])
        if total > 0:  # /proc could not say: nothing to print
            busy = r["throughput"] * total / CORES
            print(f"  {total:6.3f} s  in all: at most {CORES / total:.2f} checks/s on {CORES} cores; busy {busy:.0%} of them")
        print(f"{r['kind']} at the peak of memory (PSS):")
        print_breakdown(r["at_peak"], indent="  ")
        print(f"{r['kind']}: the largest PSS each kind of process reached (1 s samples):")
        print_breakdown(r["largest"], indent="  ")
        print(f"{r['kind']}: the peak RSS of the largest process of each kind (the kernel's high-water mark, shared pages in full):")
        print_breakdown(r["high_water"], indent="  ")


if __name__ == "__main__":
    main()
