"""`sentinel replay` and `sentinel demo --replay` on the terminal: options, a progress bar per policy,
the summary table. Imports only typer and rich at module level, like `sentinel.cli`."""

from __future__ import annotations

import contextlib
import io
import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table


def replay_command(
    stream: Annotated[Path, typer.Argument(help="Folder of batch files (CSV), replayed in name order.")],
    reference: Annotated[Path, typer.Option("--reference", help="Labeled CSV the first champion of every policy is trained on.")],
    holdout: Annotated[
        list[str], typer.Option("--holdout", help="NAME=FILE.csv: labeled rows every champion is scored on after each batch (repeatable).")
    ],
    policies: Annotated[
        Optional[list[str]],
        typer.Option(
            "--policy", help="sentinel, never, always, oracle, or a settings file (.toml); repeatable. Default: the four built-ins."
        ),
    ] = None,
    bad: Annotated[
        Optional[list[str]],
        typer.Option("--bad", help="File name or glob of a batch known to carry bad labels (also read from known-bad.txt in the folder)."),
    ] = None,
    out: Annotated[Path, typer.Option("--out", help="Folder for replay.json, replay.csv, replay.html and replay.png.")] = Path(
        "replay-out"
    ),
    mlflow: Annotated[
        Optional[bool],
        typer.Option("--mlflow/--no-mlflow", help="Log the comparison to the project's MLflow. Default: when a tracking URI is set."),
    ] = None,
    jobs: Annotated[int, typer.Option("--jobs", min=1, help="Policies replayed at once, each in a process of its own.")] = 2,
    json_output: Annotated[bool, typer.Option("--json", help="Print the summary as one JSON document.")] = False,
):
    """Backtest retraining policies on a folder of past batches, side by side, each in a throwaway project."""
    from sentinel import replay
    from sentinel.settings import load_settings

    settings = load_settings()
    chosen = [replay.policy(spec) for spec in (policies or list(replay.BUILT_IN))]
    stream_ = replay.open_stream(stream, reference, replay.parse_holdouts(holdout), list(bad or []), settings)
    log = mlflow if mlflow is not None else replay.tracking_uri_given(settings.home)
    run(stream_, chosen, settings, out, log, json_output, jobs)


def run(stream, policies, settings, out: Path, log_to_mlflow: bool, json_output: bool, jobs: int = 2) -> dict:
    """Replay with a progress bar per policy (on a terminal), write the outputs, print the summary."""
    from sentinel import replay, replay_report

    screen = Console(stderr=json_output)
    progress = Progress(
        TextColumn("{task.description:>10}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=screen,
        disable=not screen.is_terminal,
    )
    tasks = {p.name: progress.add_task(p.name, total=len(stream.files)) for p in policies}

    def advance(name: str, index: int, record: dict) -> None:
        progress.update(tasks[name], completed=index + 1)
        if not screen.is_terminal and not json_output:
            screen.print(f"{name}: {escape(record['file'])} {record['status']} → champion v{record['champion']}", highlight=False)

    with progress, _quiet():
        result = replay.replay(stream, policies, settings, advance, jobs)
    paths = replay_report.write(result, out)
    if log_to_mlflow:
        result["mlflow_run_id"] = replay_report.log_to_mlflow(result, paths, settings.mlflow_tracking_uri)
    summary = {"out": str(out), "policies": {n: {k: v for k, v in s.items() if k != "batches"} for n, s in result["policies"].items()}}
    if json_output:
        sys.stdout.write(json.dumps(summary, indent=2, default=str) + "\n")
    else:
        _summary_table(screen, result)
        screen.print(f"wrote {', '.join(str(p) for p in paths.values())}", highlight=False, soft_wrap=True)
    return result


@contextlib.contextmanager
def _quiet():
    """MLflow prints "Created version N" and the like for every policy; a replay reports what matters."""
    with contextlib.redirect_stderr(io.StringIO()) if not sys.stderr.isatty() else contextlib.nullcontext():
        yield


def _summary_table(screen: Console, result: dict) -> None:
    table = Table(
        title=f"replay of {len(result['files'])} batches",
        caption="accuracy on each holdout at the end and on average over the stream; bad: promotions that learned a batch known bad",
        box=box.SIMPLE_HEAD,
    )
    table.add_column("policy", no_wrap=True)
    for holdout in result["holdouts"]:
        table.add_column(f"{holdout}\nfinal", justify="right")
        table.add_column(f"{holdout}\nmean", justify="right")
    for column in ("retrains", "promoted", "bad", "CPU s"):
        table.add_column(column, justify="right", no_wrap=True)
    for name, s in result["policies"].items():
        accuracy = [f"{s[kind][h]:.3f}" for h in result["holdouts"] for kind in ("final", "mean")]
        table.add_row(
            escape(name), *accuracy, str(s["retrains"]), str(s["promotions"]), str(s["bad_promotions"]), f"{s['compute_seconds']:.0f}"
        )
    screen.print(table)


def demo_replay(home: Path, out: Path, json_output: bool, jobs: int = 2) -> dict:
    """`sentinel demo --replay`: the demo's stream (stable IMDB, the shift to Rotten Tomatoes, a batch
    with flipped labels) replayed with the four built-in policies."""
    from sentinel import demo, replay
    from sentinel.settings import load_settings

    settings = load_settings()
    folder = home / "data" / "replay-demo"
    paths = demo.replay_stream(folder)
    holdouts = {"imdb": paths["imdb"], "rotten": paths["rotten"]}
    stream = replay.open_stream(folder / "stream", paths["reference"], holdouts, [], settings)
    if not json_output:
        Console().print(f"stream: {folder / 'stream'} ({len(stream.files)} batches); holdouts of unseen IMDB and Rotten Tomatoes reviews")
    return run(stream, [replay.policy(p) for p in replay.BUILT_IN], settings, out, False, json_output, jobs)
