"""What a person reads in the terminal of `up` and `watch`: one timestamped line per thing that happened."""

from __future__ import annotations

import time

from rich.console import Console
from rich.markup import escape

console = Console()
errors = Console(stderr=True)


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
