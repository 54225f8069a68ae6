"""Replay: run the retraining policy over a folder of past batches, beside the alternatives, and score
what each would have done on held-out data.

Each policy runs the real loop (intake, drift check, retrain, gate, registry, references) in a throwaway
project of its own: a temporary folder with a SQLite ledger and a local MLflow store, no server, and
nothing of the user's project touched. After every batch the champion of that moment is scored on each
holdout, so the policies can be compared as curves, not as one final number.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import os
import pickle
import queue
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from sentinel import batch_format, drift_worker, gate
from sentinel.errors import SentinelError
from sentinel.memo import Memo
from sentinel.row_slices import predict_in_slices
from sentinel.settings import Settings

BUILT_IN = ("sentinel", "never", "always", "oracle")
KNOWN_BAD_FILE = "known-bad.txt"  # in a stream folder: one file name (or glob) a line, batches whose labels are bad
ACTOR = "replay"


@dataclass(frozen=True)
class Policy:
    """What to replay: settings over the project's own, and when to retrain and promote.

    `retrains`: "drift" (the loop as it runs), "never" (the first champion forever) or "every-batch".
    `promotes`: "gate" (the gate decides) or "always" (the gate's decision is overruled).
    `learns`: "screened" (what the loop learns: not the batches its drift check found suspect),
    "accepted" (every batch intake accepted) or "known-good" (the oracle's: every batch not known bad)."""

    name: str
    overrides: dict = field(default_factory=dict)
    retrains: str = "drift"
    promotes: str = "gate"
    learns: str = "screened"


def policy(spec: str) -> Policy:
    """A built-in policy by name, or a settings file (TOML, the keys of sentinel.toml) named by its stem."""
    if spec == "sentinel":
        return Policy("sentinel")
    if spec == "never":
        return Policy("never", retrains="never")
    # The baselines overrule the gate: they do not pay for the cross-fits that only feed its evidence.
    no_cross_fit = {"gate": {"cross_fit_folds": 0}}
    if spec == "always":
        return Policy("always", no_cross_fit, retrains="every-batch", promotes="always", learns="accepted")
    if spec == "oracle":
        return Policy("oracle", no_cross_fit, retrains="every-batch", promotes="always", learns="known-good")
    path = Path(spec)
    if not path.is_file():
        raise SentinelError(f"unknown policy {spec!r}: use one of {', '.join(BUILT_IN)} or the path of a settings file (.toml)")
    try:
        overrides = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise SentinelError(f"policy file {path} is not valid TOML: {error}") from None
    if path.stem in BUILT_IN:
        raise SentinelError(f"policy file {path} is named like the built-in policy {path.stem!r}: rename it")
    return Policy(path.stem, overrides)


@dataclass(frozen=True)
class Stream:
    """The batches to replay, in name order, the reference of the first champion, the holdouts that score
    every champion, and which batches are known to carry bad labels."""

    files: tuple[Path, ...]
    reference: Path
    holdouts: dict[str, pd.DataFrame]
    known_bad: tuple[str, ...] = ()

    def is_bad(self, name: str) -> bool:
        """Is this file one of the batches known to carry bad labels?"""
        return any(fnmatch.fnmatch(name, pattern) for pattern in self.known_bad)


def open_stream(folder: Path, reference: Path, holdouts: dict[str, Path], known_bad: list[str], settings: Settings) -> Stream:
    """Check the stream's folder, reference and holdouts; one clear error for the first thing wrong."""
    if not folder.is_dir():
        raise SentinelError(f"stream folder not found: {folder}")
    files = tuple(sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in (".csv", ".tsv")))
    if not files:
        raise SentinelError(f"{folder} holds no batch files (*.csv, *.tsv) to replay")
    if not reference.is_file():
        raise SentinelError(f"reference file not found: {reference}")
    if not holdouts:
        raise SentinelError("give at least one --holdout NAME=FILE.csv: the rows every champion is scored on")
    frames = {}
    for name, path in holdouts.items():
        if not path.is_file():
            raise SentinelError(f"holdout {name!r}: file not found: {path}")
        try:
            parsed = batch_format.read_export(path.read_bytes(), settings.intake)
        except batch_format.RejectedFile as rejected:
            raise SentinelError(
                f"holdout {name!r} ({path.name}) is not usable: {rejected.problem.message}; {rejected.problem.fix}"
            ) from None
        frames[name] = parsed.frame[["text", "label"]]
    listed = folder / KNOWN_BAD_FILE
    if listed.is_file():
        known_bad = [*known_bad, *(line.strip() for line in listed.read_text().splitlines() if line.strip() and not line.startswith("#"))]
    return Stream(files, reference, frames, tuple(known_bad))


def parse_holdouts(specs: list[str]) -> dict[str, Path]:
    """`NAME=FILE.csv` (or just `FILE.csv`, named by its stem) into a name → path mapping."""
    holdouts: dict[str, Path] = {}
    for spec in specs:
        name, _, path = spec.partition("=") if "=" in spec else (Path(spec).stem, "", spec)  # a path may hold "=" too
        if not name or not path:
            raise SentinelError(f"--holdout {spec!r}: write NAME=FILE.csv")
        if name in holdouts:
            raise SentinelError(f"--holdout: the name {name!r} is given twice")
        holdouts[name] = Path(path)
    return holdouts


def _merge(base: dict, overrides: dict) -> dict:
    merged = dict(base)
    for key, value in overrides.items():
        merged[key] = _merge(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) else value
    return merged


def workspace_settings(base: Settings, policy: Policy, home: Path) -> Settings:
    """The policy's settings in its throwaway project: the project's settings, the policy's over them,
    and everything that points at state (folders, ledger, MLflow, Prefect) moved into `home`."""
    values = _merge(base.model_dump(exclude={"home", "ledger_url", "mlflow_tracking_uri", "prefect_api_url"}), policy.overrides)
    for key in ("home", "ledger_url", "mlflow_tracking_uri", "prefect_api_url"):
        if key in policy.overrides:
            raise SentinelError(f"policy {policy.name}: the setting {key} cannot be replayed (every policy runs in a throwaway project)")
    # A replayed file is complete when it is copied in: no writer to wait for.
    values["intake"] = values["intake"] | {"settle_seconds": 0.0, "closed_settle_seconds": 0.0}
    return Settings(**values, home=home, ledger_url="", mlflow_tracking_uri="", prefect_api_url="")


def _promote_regardless(decision: gate.Decision) -> gate.Decision:
    if decision.decision == "promoted":
        return decision
    return dataclasses.replace(
        decision, decision="promoted", reason=f"promoted by the replay policy whatever the gate said ({decision.reason})"
    )


class _Scorer:
    """Accuracy of a champion on every holdout, computed once per version."""

    def __init__(self, holdouts: dict[str, pd.DataFrame]) -> None:
        self.holdouts = holdouts
        self.scores: dict[str, dict[str, float]] = {}

    def __call__(self, app, row) -> dict[str, float]:
        if row.version not in self.scores:
            model = app.load_model(row)
            self.scores[row.version] = {
                name: round(float(np.mean(predict_in_slices(model.predict, frame[["text"]]) == frame["label"].to_numpy())), 5)
                for name, frame in self.holdouts.items()
            }
        return self.scores[row.version]


def run_policy(
    stream: Stream,
    policy: Policy,
    base: Settings,
    on_batch: Callable[[int, dict], None] = lambda i, record: None,
    memo_folder: Path | None = None,
) -> dict:
    """Replay the whole stream with one policy in a throwaway project; its record per batch and summary.
    `memo_folder`: where the policies of one replay keep their fits and references (`sentinel.memo`)."""
    from sentinel.context import Sentinel
    from sentinel.drift_checks import check_pending
    from sentinel.intake import load_batch_frame
    from sentinel.retraining import bootstrap, retrain
    from sentinel.taking_in import take_in

    with tempfile.TemporaryDirectory(prefix=f"sentinel-replay-{policy.name}-") as folder:
        app = Sentinel(workspace_settings(base, policy, Path(folder)), memo=Memo(memo_folder))
        score = _Scorer(stream.holdouts)

        def cpu() -> float:
            return time.process_time() + drift_worker.cpu_seconds() + app.memo.charged

        started, cpu_started = time.perf_counter(), cpu()
        try:
            first = bootstrap(app, stream.reference, actor=ACTOR)
            setup = {"champion": first.version, "accuracy": score(app, first), "wall_seconds": round(time.perf_counter() - started, 3)}
            files: dict[str, str] = {}  # batch id → file name
            records = []
            for index, path in enumerate(stream.files):
                tick, cpu_tick = time.perf_counter(), cpu()
                target = app.settings.incoming_dir / path.name
                shutil.copyfile(path, target)
                outcome = take_in(app, [target])[0]
                record: dict = {"file": path.name, "status": outcome.status, "batch_id": outcome.batch_id, "rows": outcome.rows}
                if outcome.reason:
                    record["reason"] = outcome.reason.get("message", "")
                champion = before = app.require_champion()
                if outcome.status == "accepted":
                    files[outcome.batch_id] = path.name
                    frame = load_batch_frame(app.ledger.batch(outcome.batch_id).stored_path)
                    predicted = predict_in_slices(app.load_model(champion).predict, frame[["text"]])
                    record["champion_accuracy_on_batch"] = round(float(np.mean(predicted == frame["label"].to_numpy())), 5)
                check_pending(app)
                if policy.learns != "screened":
                    _overrule_screening(app, lambda batch_id: policy.learns == "known-good" and stream.is_bad(files.get(batch_id, "")))
                run = None
                if policy.retrains != "never":
                    overrule = _promote_regardless if policy.promotes == "always" else None
                    run = retrain(app, ACTOR, only_when_due=policy.retrains == "drift", overrule=overrule)
                record |= _verdict(app, outcome.batch_id) if outcome.status == "accepted" else {"drift": None, "drift_status": "-"}
                record["retrained"] = run is not None
                record["decision"] = run.decision if run else None
                record["decision_reason"] = run.reason if run else None
                record["learned"] = [files.get(b, b) for b in run.batch_ids] if run else []
                champion = app.require_champion()
                # A champion can change without a retrain: the shadow evidence of a challenger promoted it.
                record["promoted"] = champion.version != before.version
                brought = set(champion.batch_ids) - set(before.batch_ids)  # what this promotion made the champion know
                record["bad_promoted"] = record["promoted"] and any(stream.is_bad(files.get(b, "")) for b in brought)
                record["champion"] = champion.version
                record["accuracy"] = score(app, champion)
                record["wall_seconds"] = round(time.perf_counter() - tick, 3)
                record["cpu_seconds"] = round(cpu() - cpu_tick, 3)
                records.append(record)
                on_batch(index, record)
        finally:
            app.close()
        return summarise(policy, setup, records, wall=time.perf_counter() - started, cpu=cpu() - cpu_started)


def _overrule_screening(app, is_bad: Callable[[str], bool]) -> None:
    """The baselines do not trust the drift check's suspicion of a batch's labels: `always` learns every
    batch, the oracle every batch not known bad. Set on the ledger's flag, so the real retrain path
    learns what the policy says."""
    from sqlalchemy import select

    from sentinel.ledger import BatchRow

    with app.ledger.transaction() as session:
        for batch in session.scalars(select(BatchRow).where(BatchRow.status == "accepted", BatchRow.trained_in.is_(None))):
            batch.suspect_labels = is_bad(batch.batch_id)


def _verdict(app, batch_id: str) -> dict:
    row = app.ledger.batch(batch_id)
    checks = app.ledger.drift_checks(batch_id)
    if not checks:
        return {"drift": None, "drift_status": row.drift_status, "suspect_labels": bool(row.suspect_labels)}
    check = checks[-1]
    return {
        "drift": bool(check.detected),
        "drift_status": row.drift_status,
        "suspect_labels": bool(row.suspect_labels),
        "scores": {s["name"]: s["score"] for s in check.signals},
        "fired": [s["name"] for s in check.signals if s["drifted"]],
        "retrain_due": row.drift_status == "detected",
        "trigger": (check.trigger or {}).get("why"),
        "shadow": check.shadow,
        "pool": (check.pool or {}).get("members"),
    }


def summarise(policy: Policy, setup: dict, records: list[dict], wall: float, cpu: float) -> dict:
    """A policy's outcome: accuracy at the end and on average over the stream (the area under its curve,
    the first champion's score included), retrains, promotions, bad promotions, and their cost."""
    names = list(setup["accuracy"])
    curves = {name: [setup["accuracy"][name]] + [r["accuracy"][name] for r in records] for name in names}
    return {
        "policy": policy.name,
        "retrains_when": policy.retrains,
        "promotes": policy.promotes,
        "settings": policy.overrides,
        "first_champion": setup,
        "final": {name: curve[-1] for name, curve in curves.items()},
        "mean": {name: round(float(np.mean(curve)), 5) for name, curve in curves.items()},
        "retrains": sum(r["retrained"] for r in records),
        "promotions": sum(r["promoted"] for r in records),
        "bad_promotions": sum(r["bad_promoted"] for r in records),
        "drift_detected": sum(bool(r.get("drift")) for r in records),
        "compute_seconds": round(cpu, 3),
        "wall_seconds": round(wall, 3),
        "batches": records,
    }


def replay(
    stream: Stream, policies: list[Policy], base: Settings, on_batch: Callable[[str, int, dict], None] = lambda *a: None, jobs: int = 1
) -> dict:
    """Every policy over the same stream, each in its own throwaway project; `jobs` policies at a time,
    each in a child process of its own, when more than one."""
    names = [p.name for p in policies]
    if len(set(names)) != len(names):
        raise SentinelError(f"a policy is given twice: {', '.join(names)}")
    for p in policies:
        workspace_settings(base, p, Path(tempfile.gettempdir()))  # a bad settings file fails before any work
    with tempfile.TemporaryDirectory(prefix="sentinel-replay-memo-") as folder:
        memo_folder = Path(folder)
        if jobs > 1 and len(policies) > 1:
            waiting = queue.SimpleQueue()
            for p in _in_turn(policies):
                waiting.put((p, memo_folder))
            done: dict[str, dict] = {}
            with ThreadPoolExecutor(min(jobs, len(policies))) as pool:
                children = [pool.submit(_child_takes_turns, waiting, stream, base, on_batch, done) for _ in range(min(jobs, len(policies)))]
                for future in children:
                    future.result()
            results = {p.name: done[p.name] for p in policies}
        else:
            results = {
                p.name: run_policy(stream, p, base, lambda i, record, name=p.name: on_batch(name, i, record), memo_folder) for p in policies
            }
    return {
        "stream": str(stream.files[0].parent),
        "reference": str(stream.reference),
        "files": [f.name for f in stream.files],
        "holdouts": list(stream.holdouts),
        "known_bad": list(stream.known_bad),
        "seed": base.model.seed,
        "policies": results,
    }


def _in_turn(policies: list[Policy]) -> list[Policy]:
    """The order children take policies in: the costly ones (a retrain on every batch) early, so no child
    is left alone with one at the end, but each beside a cheaper one: two costly policies started together
    would compute their shared fits and references in lockstep, one waiting for the other (`Memo`), where
    the second started later reads what the first kept."""
    costly = [p for p in policies if p.retrains == "every-batch"]
    cheap = [p for p in policies if p.retrains != "every-batch"]
    order = []
    while costly or cheap:
        order += [costly.pop(0)] if costly else []
        order += [cheap.pop(0)] if cheap else []
    return order


# A policy runs in a plain `python -m sentinel.replay` child that reads its request as a pickle on stdin
# and answers with pickled messages on stdout, for the reason `sentinel.drift` gives for its worker
# (multiprocessing would re-run an unguarded caller's script in every child). Each child has its own
# MLflow client state, which is global to a process.


def _child_takes_turns(waiting: queue.SimpleQueue, stream: Stream, base: Settings, on_batch, done: dict) -> None:
    """One child replays policies from the queue until none is left (its imports are paid once)."""
    with tempfile.TemporaryFile() as log:
        child = subprocess.Popen([sys.executable, "-m", __name__], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log)
        try:
            while True:
                try:
                    policy_, memo_folder = waiting.get_nowait()
                except queue.Empty:
                    return
                pickle.dump((stream, policy_, base, memo_folder), child.stdin, protocol=pickle.HIGHEST_PROTOCOL)
                child.stdin.flush()
                done[policy_.name] = _answer(child, log, policy_, on_batch)
        finally:
            child.stdin.close()  # the child stops at end of input
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()


def _answer(child: subprocess.Popen, log, policy_: Policy, on_batch) -> dict:
    while True:
        try:
            kind, *payload = pickle.load(child.stdout)  # our own child: trusted bytes
        except EOFError:
            child.wait()
            log.seek(0)
            tail = log.read().decode(errors="replace").strip().splitlines()[-5:]
            raise SentinelError(f"replay of policy {policy_.name} stopped (exit code {child.returncode}): {' / '.join(tail)}") from None
        if kind == "batch":
            on_batch(policy_.name, *payload)
        elif kind == "error":
            raise SentinelError(f"replay of policy {policy_.name} failed: {payload[0]}")
        else:
            return payload[0]


def _serve_one() -> None:
    """The child's loop: replay each (stream, policy, settings) request until end of input."""
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # whatever a library prints goes to the log, never into the answers
    # The children already keep the cores busy: a drift worker of each would only contend with them.
    drift_worker.work_in_process()

    def send(*message) -> None:
        pickle.dump(message, answers, protocol=pickle.HIGHEST_PROTOCOL)
        answers.flush()

    while True:
        try:
            stream, policy_, base, memo_folder = pickle.load(sys.stdin.buffer)
        except EOFError:
            return
        try:
            result = run_policy(stream, policy_, base, lambda index, record: send("batch", index, record), memo_folder)
        except Exception as error:  # sent to the parent, which raises it
            send("error", f"{type(error).__name__}: {error}")
            return
        send("done", result)


def tracking_uri_given(home: Path) -> bool:
    """Was an MLflow tracking URI set on purpose (a variable or sentinel.toml), not left to the default?"""
    if os.environ.get("SENTINEL_MLFLOW_TRACKING_URI") or os.environ.get("MLFLOW_TRACKING_URI"):
        return True
    toml = home / "sentinel.toml"
    try:
        return bool(toml.is_file() and tomllib.loads(toml.read_text()).get("mlflow_tracking_uri"))
    except (OSError, tomllib.TOMLDecodeError):
        return False


if __name__ == "__main__":
    # Run from the module imported under its real name, so the request unpickles as `sentinel.replay.…`.
    from sentinel.replay import _serve_one as serve

    serve()
