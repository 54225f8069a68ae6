"""The drift worker: one child process that runs Evidently's slowest work while this process does other
CPU-bound work (the GIL rules out threads). The jobs of `sentinel.drift_jobs` run there: the text
signal's domain classifier with the champion's predictions of the batch (the model is a `Held` argument,
kept between jobs), while this process computes the descriptors and the other signals; all of
Evidently's work for a cold process; and a new drift reference with its calibration, while a retrain
fits the model.

It is a plain `python -m sentinel.drift_worker` child talking pickle over its pipes, written by hand
because multiprocessing's spawn and forkserver re-run the parent's main script in every child (an
unguarded user script would run twice) and fork would copy whatever threads the parent holds.

A worker that dies is reaped and replaced, and the job it had is done in this process; one that gives
no answer within the timeout is killed, reaped and replaced, and the job fails (the drift check's batch
is tried again later). After three failures in a row every job runs in this process.
"""

from __future__ import annotations

import atexit
import importlib
import os
import pickle
import select
import subprocess
import sys
import threading
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

JOBS_MODULE = "sentinel.drift_jobs"  # its JOBS: name -> function, run in the worker
GIVE_UP_AFTER = 3  # worker failures in a row before every job runs in this process
HELD = 2  # values a worker keeps (see `Held`): the champion, and the one before it for a job already sent
# OpenBLAS's second thread spun at full speed through every text job without shortening it (the job's
# CPU was twice its wall time: 0.23 s against 0.12 s on 2 cores), CPU taken from the watcher under load.
# With one thread the scores, calibrations and predictions are the same to the last bit (the worker's
# answers equal this process's: tests/unit/test_drift.py). The worker only: with another thread count a
# fit's solver stops at other coefficients (25,000 reviews: -0.1400 against -0.1442 for the first), so
# the retrains' models are left as they were. Read by OpenBLAS as it loads, so set before the worker starts.
ONE_BLAS_THREAD = {"OPENBLAS_NUM_THREADS": "1"}


@dataclass(frozen=True)
class Held:
    """An argument the worker keeps between jobs under `key`: sent whole with the first job that needs
    it, by its key alone after that (the champion's pipeline is megabytes and changes only at a promotion)."""

    key: str
    value: object


@dataclass(frozen=True)
class _HeldKey:
    key: str


class WorkerHung(RuntimeError):
    """The worker gave no answer in time; it was stopped and will be replaced."""


class Worker:
    """One child process that runs the jobs of `JOBS_MODULE` on request, one at a time."""

    def __init__(self) -> None:
        command = [sys.executable, "-m", __name__, JOBS_MODULE]
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=os.environ | ONE_BLAS_THREAD)
        self.busy = threading.Lock()
        self.in_flight = False
        self.writing: threading.Thread | None = None
        self.write_error: OSError | None = None
        self.holds: OrderedDict[str, None] = OrderedDict()  # keys of the `Held` values it keeps, as it keeps them

    def submit(self, job: str, *args) -> Worker | None:
        """Send a request; None when the worker is busy with another one (the caller works itself). A
        thread writes it: a request is megabytes, more than a pipe holds, and a worker that stopped
        reading must not block the caller (`result` bounds the wait)."""
        if self.process.poll() is not None:
            raise OSError("the drift worker has exited")
        if not self.busy.acquire(blocking=False):
            return None
        request = pickle.dumps((job, _to_send(args, self.holds)), protocol=pickle.HIGHEST_PROTOCOL)
        self.write_error, self.in_flight = None, True
        self.writing = threading.Thread(target=self._write, args=(request,), daemon=True, name="drift-worker-request")
        self.writing.start()
        return self

    def _write(self, request: bytes) -> None:
        try:
            self.process.stdin.write(request)
            self.process.stdin.flush()
        except OSError as error:  # the worker died; `result` reports it
            self.write_error = error

    def result(self, timeout: float | None = None):
        """The answer to the request in flight, waiting at most `timeout` seconds for it to begin."""
        try:
            ready, _, _ = select.select([self.process.stdout], [], [], timeout)
            if not ready:
                raise WorkerHung(f"the drift worker gave no answer in {timeout:.0f} s (drift.worker_timeout_seconds); it was replaced")
            answer = pickle.load(self.process.stdout)  # our own child: trusted bytes
            self.writing.join()
            if self.write_error is not None:
                raise self.write_error
        finally:
            self.in_flight = False
            self.busy.release()
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def stop(self) -> None:
        """Kill the child and reap it, so no zombie is left (a request still being written then fails)."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        if self.writing is not None:
            self.writing.join(timeout=5)

    def close(self) -> None:
        """Let the child finish at end of input; kill it if it does not."""
        if self.process.poll() is None:
            self.process.stdin.close()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.stop()


_worker: Worker | None = None
_work_here = False  # True inside the worker, and once workers keep failing: then every job runs here
_failures = 0
_started = False  # a worker was started in this process (see `started_here`)


def warm_up() -> Worker | None:
    """Start the worker now (if it is not running), so the first job does not wait for its imports;
    None when jobs run in this process."""
    global _worker, _started
    if not _work_here and _worker is None:
        _worker, _started = Worker(), True
        atexit.register(_worker.close)
    return _worker


def available() -> bool:
    """True unless every job runs in this process."""
    return not _work_here


def started_here() -> bool:
    """True once this process has started a worker and has not given up on workers."""
    return _started and not _work_here


def start(job: str, *args) -> Worker | None:
    """Start a job in the worker; None means: do it here."""
    try:
        worker = warm_up()
        return worker.submit(job, *args) if worker else None
    except OSError:  # the worker is gone
        _replace(_worker)
        return None


def collect(pending: Worker | None, timeout: float | None = None):
    """The job's answer, or None if it must be done here after all (no worker, or the worker died).
    Raises WorkerHung when the worker did not answer within `timeout` seconds."""
    global _failures
    if pending is None:
        return None
    try:
        answer = pending.result(timeout)
    except WorkerHung:
        _replace(pending)
        raise
    except (OSError, EOFError, pickle.UnpicklingError):  # killed, out of memory, could not start
        _replace(pending)
        return None
    _failures = 0
    return answer


def abandon(pending: Worker | None) -> None:
    """A job whose caller failed before collecting it: the worker is replaced rather than left busy
    with an answer nobody reads."""
    if pending is not None and pending.in_flight:
        _replace(pending)


def _replace(worker: Worker | None) -> None:
    global _worker, _work_here, _failures
    if worker is not None:
        worker.stop()
    if worker is _worker:
        _worker = None
    _failures += 1
    _work_here = _work_here or _failures >= GIVE_UP_AFTER


def work_in_process() -> None:
    """Do every job in this process from now on: trades a few seconds for the worker's memory."""
    global _worker, _work_here
    if _worker is not None:
        _worker.stop()
    _worker, _work_here = None, True


def cpu_seconds() -> float:
    """CPU seconds the running worker has used so far (0 without one, or where /proc cannot say): the
    worker is a long-lived child, so the rusage of reaped children never counts it."""
    if _worker is None:
        return 0.0
    try:
        fields = Path(f"/proc/{_worker.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def serve(module: str) -> None:
    """The worker's loop: answer (job, args) requests with `module.JOBS` until end of input."""
    global _work_here
    _work_here = True  # a job that measures text does it in this process, never in a grandchild
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # anything a library prints goes to stderr, never into the answers
    warnings.simplefilter("ignore")
    imported = importlib.import_module(module)  # by its real name, so answers pickle as `sentinel.drift.…`
    jobs = imported.JOBS
    getattr(imported, "prepare", lambda: None)()  # its slow imports, before the first request waits on them
    requests = sys.stdin.buffer
    held: OrderedDict[str, object] = OrderedDict()
    while True:
        try:
            job, args = pickle.load(requests)
        except EOFError:  # the parent is done; every answer is flushed, and tearing Python down costs 0.8 s
            sys.stderr.flush()
            os._exit(0)
        try:
            answer = jobs[job](*_unhold(args, held))
        except Exception as error:  # sent back and raised in the parent
            answer = RuntimeError(f"{job} failed in the worker: {error!r}")
        pickle.dump(answer, answers, protocol=pickle.HIGHEST_PROTOCOL)
        answers.flush()


def _remember(held: OrderedDict, key: str, value: object) -> None:
    held[key] = value
    held.move_to_end(key)
    while len(held) > HELD:
        held.popitem(last=False)


def _to_send(args: tuple, holds: OrderedDict[str, None]) -> tuple:
    """The arguments as sent: a `Held` value the worker keeps already by its key alone. `holds` is the
    account of the keys the worker keeps, kept as `_unhold` keeps them there."""
    sent = tuple(_HeldKey(a.key) if isinstance(a, Held) and a.key in holds else a for a in args)
    for arg in sent:
        if isinstance(arg, Held | _HeldKey):
            _remember(holds, arg.key, None)
    return sent


def _unhold(args: tuple, held: OrderedDict[str, object]) -> list:
    """The job's arguments, each `Held` value kept (the oldest dropped past `HELD`) and each key
    replaced by the value kept under it (a KeyError if it is not kept: the parent keeps the same
    account of what was sent)."""
    values = []
    for arg in args:
        if isinstance(arg, Held):
            _remember(held, arg.key, arg.value)
        elif isinstance(arg, _HeldKey):
            held.move_to_end(arg.key)
        values.append(held[arg.key] if isinstance(arg, Held | _HeldKey) else arg)
    return values


if __name__ == "__main__":
    # Serve from the module imported under its real name: the flag that keeps jobs in this process must
    # be the one `sentinel.drift` reads.
    from sentinel.drift_worker import serve as serve_here

    serve_here(sys.argv[1])
