"""What a person reads in the terminal: the tables of the read commands, and the one timestamped line per
thing that happened that `up` and `watch` print. The records come from `sentinel.read_models`."""

from __future__ import annotations

import signal
import time

from rich.console import Console
from rich.markup import escape
from rich.table import Table

console = Console()
errors = Console(stderr=True, soft_wrap=True)  # an error is one line, however narrow the terminal


def stop_like_ctrl_c() -> None:
    """Make SIGTERM and SIGINT raise KeyboardInterrupt in the main thread, so a long-running command stops
    and cleans up the same way on Ctrl-C, on `kill` or a service manager's stop, and when the shell that
    started it in the background left SIGINT ignored (its children inherit that, and Python keeps it)."""
    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop_signal, _raise_keyboard_interrupt)


def _raise_keyboard_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def say(line: str) -> None:
    """One line, stamped with the time."""
    console.print(f"{time.strftime('%H:%M:%S')} {line}", highlight=False)


def progress(kind: str, item) -> None:
    """One line per intake outcome, drift verdict or error, for `up` and `watch`."""
    stamp = time.strftime("%H:%M:%S")
    if kind == "intake":
        if item.status == "accepted":
            console.print(f"{stamp} [green]accepted[/green] {escape(item.file)}: {item.rows} rows → batch {item.batch_id}", highlight=False)
        elif item.status != "waiting":
            reason = (item.reason or {}).get("message", "")
            color = "red" if item.status == "error" else "yellow"
            console.print(f"{stamp} [{color}]{item.status}[/{color}] {escape(item.file)}: {escape(reason)}", highlight=False)
    elif kind == "drift":
        fired = [f"{s['name']} {s['score']:.3f} > {s['threshold']:.3f}" for s in item.signals if s["drifted"]]
        verdict = "[red]drift detected[/red] (" + ", ".join(fired) + ")" if item.detected else "[green]no drift[/green]"
        console.print(f"{stamp} batch {item.batch_id}: {verdict}", highlight=False)
    elif kind == "error":
        errors.print(f"{stamp} [red]error:[/red] {escape(str(item))}", highlight=False)


def _drift_summary(record: dict) -> str:
    drift = record.get("drift")
    if not drift:
        if record["status"] != "accepted":
            return "-"
        failures = record.get("check_failures")
        if record.get("drift_status") == "failed":
            return f"[red]check failed[/red] {failures['attempts']}×: `sentinel requeue` once fixed"
        if failures:
            return f"pending (check failed {failures['attempts']}×, tried again)"
        return "waiting for its pool" if record.get("waiting_for_pool") else "pending"
    fired = [s["name"] for s in drift["signals"] if s["drifted"]]
    pooled = f" (pool of {len(drift['pool']['members'])})" if drift.get("pool") else ""
    if not drift["detected"]:
        return f"[green]clear[/green]{pooled}"
    summary = f"[yellow]drift[/yellow]: {fired[0]}" + (f" +{len(fired) - 1}" if len(fired) > 1 else "") + pooled
    trigger = drift.get("trigger") or {}
    return summary if trigger.get("fired", True) else summary + " (harmless: no retrain)"


def tuning_table(search) -> None:
    """A model search (a `TuningRow`): each candidate's cross-validated score, the chosen one marked."""
    table = Table(title=f"model search on {search.rows} training rows ({search.seconds:.1f} s)")
    for column in ("candidate", f"{search.metric} (mean of folds)", "std", "seconds"):
        table.add_column(column)
    for c in search.candidates:
        chosen = c["params"] == search.chosen
        name = f"[bold]{c['name']}[/bold] (chosen)" if chosen else c["name"]
        table.add_row(name, f"{c['mean']:.4f}", f"{c['std']:.4f}", f"{c['seconds']:.2f}")
    console.print(table)
    console.print(f"retrains now fit {search.chosen['family']} C={search.chosen['C']:g}; MLflow run {search.mlflow_run_id}")


def batch_table(records: list[dict], title: str) -> None:
    """Batches as `process` and `batches` print them, with each refused file's reason and fix below."""
    table = Table(title=title)
    for column in ("batch", "file", "rows", "status", "drift", "model", "decision"):
        table.add_column(column, overflow="fold")  # a batch id a person copies is never cut short
    for r in records:
        status = r["status"] if r["status"] == "accepted" else f"[red]{r['status']}[/red]"
        if r.get("suspect_labels"):
            status += " [red](suspect labels)[/red]"
        table.add_row(
            r.get("batch_id") or "-",
            escape(r["file"]),
            str(r.get("rows", 0)) + (f" (-{r['rows_set_aside']} set aside)" if r.get("rows_set_aside") else ""),
            status,
            _drift_summary(r),
            r.get("model_version") or "-",
            r.get("decision") or "-",
        )
    console.print(table)
    for r in records:
        if r.get("reason") and r["status"] != "accepted":
            reason = r["reason"]
            console.print(escape(f"  {r['file']}: {reason.get('message')} -> {reason.get('fix', '')}"), highlight=False)
        if r.get("set_aside"):
            console.print(escape(f"  {r['file']}: {r['rows_set_aside']} row(s) set aside in {r['set_aside']}"), highlight=False)
        if r.get("excluded"):
            console.print(
                escape(f"  {r['file']}: not learned: {r['excluded']} (`sentinel requeue {r['batch_id']}` to learn it)"), highlight=False
            )


def models_table(records: list[dict], title: str) -> None:
    """Model versions as `models` prints them: role, decision, the gate's numbers, drift, review."""
    table = Table(title=title)
    for column in (
        "version",
        "aliases",
        "role",
        "decision",
        "metric",
        "new",
        "delta [CI]",
        "e-value",
        "drift text/label",
        "batches",
        "created",
        "review",
        "reason",
    ):
        table.add_column(column, overflow="fold")
    for r in records:
        t = r["tags"]
        ci = f"{_num(t.get('delta'), '+.3f')} [{_num(t.get('ci_low'), '+.3f')}, {_num(t.get('ci_high'), '+.3f')}]" if "delta" in t else "-"
        drift_scores = f"{_num(t.get('drift_text'))}/{_num(t.get('drift_label'))}" if "drift_text" in t else "-"
        review = escape(f"{t['review']} by {t.get('reviewed_by', '?')}") if "review" in t else "-"
        reason = escape(t.get("override") or t.get("reason", ""))
        table.add_row(
            r["version"], ",".join(r["aliases"]) or "-", t.get("role", "-"), t.get("decision", "-"), t.get("metric", "-"), _num(t.get("metric_new")),
            ci, _num(t.get("e_value"), ".3g"), drift_scores, str(len(r["new_batches"]) or len(r["batches"])), r["created_at"][:16], review, reason,
        )  # fmt: skip
    console.print(table)


def _num(value, spec: str = ".3f") -> str:
    try:
        return format(float(value), spec)
    except (TypeError, ValueError):
        return "-"


def print_lineage(found: dict) -> None:
    """One version's lineage as `show` prints it."""
    tags = found["tags"]
    console.print(
        f"[bold]{found['model']} version {found['version']}[/bold]  aliases: {', '.join(found['aliases']) or '-'}  role: {tags.get('role', '-')}",
        highlight=False,
    )
    for batch in found["new_batches"]:
        console.print(
            f"  batch {batch['batch_id']}  {escape(batch['file'])}  {batch['rows']} rows"
            + (f" ({batch['rows_set_aside']} set aside)" if batch.get("rows_set_aside") else "")
            + f"  received {batch['received_at'][:19]}",
            highlight=False,
        )
        for check in batch["drift_checks"]:
            verdict = "drift: " + ", ".join(check["fired"]) if check["detected"] else "no drift"
            console.print(
                f"    drift check against v{check['against_version']}: {verdict}  (MLflow {check['mlflow_run']})", highlight=False
            )
    if found["retrain"]:
        run = found["retrain"]
        console.print(f"  retrain {run['run_name']}: {run['trained_rows']} rows  (MLflow {run['mlflow_run']})", highlight=False)
        console.print(f"  gate: {found['gate']['decision']} — {escape(found['gate']['reason'] or '')}", highlight=False)
        for piece in (found["gate"].get("comparison") or {}).get("slices") or []:
            console.print(
                f"    {piece['name']} ({piece['test']}): {piece['rows']} rows, {_num(piece['champion'])} -> {_num(piece['challenger'])}"
                f"  delta {_num(piece['delta'], '+.3f')} [{_num(piece['ci_low'], '+.3f')}, {_num(piece['ci_high'], '+.3f')}]  {piece['verdict']}",
                highlight=False,
            )
    if tags.get("review"):
        console.print(escape(f"  review: {tags['review']} by {tags.get('reviewed_by')}: {tags.get('review_note', '')}"), highlight=False)
    for move in found["alias_moves"]:
        console.print(
            escape(f"  {move['at'][:19]}  {move['alias']}: {move['from'] or '-'} → {move['to'] or '-'}  by {move['by']}: {move['reason']}"),
            highlight=False,
        )


def report_failure(error: BaseException) -> int | None:
    """Print an expected failure (a user's mistake, or MLflow, a lock, the database or the Prefect API
    failing) as one line on stderr and return its exit code; None for anything else, to be raised."""
    from sentinel.errors import expected_failure

    failure = expected_failure(error)
    if failure is None:
        return None
    code, message = failure
    errors.print(f"[red]error:[/red] {escape(message)}", highlight=False)
    return code
