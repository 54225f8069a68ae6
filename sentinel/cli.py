"""`sentinel`: the command line of the loop. Read commands take `--json` and print one JSON document."""

from __future__ import annotations

import functools
import json
import os
import sys
import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from sentinel.errors import SentinelError

app = typer.Typer(help="Sentinel keeps a review-sentiment classifier fresh: drop labeled CSV batches into data/incoming/ and it checks drift, retrains and gates.", no_args_is_help=True, add_completion=False)
console = Console()
errors = Console(stderr=True)
JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON document instead of a table.")]


def friendly(command):
    """A user's mistake becomes one clear line on stderr and exit code 1, never a traceback."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        from sentinel.registry import TamperedModel

        try:
            return command(*args, **kwargs)
        except (SentinelError, TamperedModel) as error:
            errors.print(f"[red]error:[/red] {error}", highlight=False)
            raise typer.Exit(1) from None
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            errors.print(f"[red]error:[/red] setting {where}: {first['msg']} (check sentinel.toml and SENTINEL_* variables)", highlight=False)
            raise typer.Exit(1) from None

    return wrapper


def _open():
    from sentinel.services import Sentinel
    from sentinel.settings import load_settings

    return Sentinel(load_settings())


def _print_json(document) -> None:
    sys.stdout.write(json.dumps(document, indent=2, default=str) + "\n")


@app.command()
@friendly
def bootstrap(
    reference: Annotated[Optional[Path], typer.Option("--reference", help="Labeled CSV (text,label) to train the first champion on.")] = None,
    demo_rows: Annotated[int, typer.Option("--demo", help="Instead of a file: this many IMDB reviews from the demo data.")] = 0,
):
    """Train the first champion on a labeled CSV and make that data the drift reference."""
    from sentinel import services

    sentinel = _open()
    if (reference is None) == (demo_rows <= 0):
        raise SentinelError("give either --reference FILE.csv or --demo ROWS")
    if reference is None:
        from sentinel import demo as demo_data

        reference = sentinel.settings.home / "data" / "demo-reference.csv"
        demo_data.reviews("imdb").head(demo_rows).to_csv(reference, index=False)
    with console.status("training the first champion and calibrating drift thresholds…"):
        model = services.bootstrap(sentinel, reference)
    console.print(f"champion: version {model.version} of {sentinel.settings.registered_model}, trained on {reference.name}")


@app.command()
@friendly
def process(as_json: JsonFlag = False):
    """Handle every file waiting in data/incoming/ (intake, drift check, retrain if due) and exit."""
    from sentinel import services

    sentinel = _open()
    records = services.process(sentinel)
    if as_json:
        _print_json(records)
        return
    if not records:
        console.print(f"nothing waiting in {sentinel.settings.incoming_dir}")
        return
    _batch_table(records, "processed")


def _drift_summary(record: dict) -> str:
    drift = record.get("drift")
    if not drift:
        return "-" if record["status"] != "accepted" else "pending"
    fired = [s["name"] for s in drift["signals"] if s["drifted"]]
    if not drift["detected"]:
        return "[green]clear[/green]"
    return f"[yellow]drift[/yellow]: {fired[0]}" + (f" +{len(fired) - 1}" if len(fired) > 1 else "")


def _batch_table(records: list[dict], title: str) -> None:
    table = Table(title=title)
    for column in ("batch", "file", "rows", "status", "drift", "model", "decision"):
        table.add_column(column)
    for r in records:
        status = r["status"] if r["status"] == "accepted" else f"[red]{r['status']}[/red]"
        if r.get("suspect_labels"):
            status += " [red](suspect labels)[/red]"
        table.add_row(r.get("batch_id") or "-", r["file"], str(r.get("rows", 0)), status, _drift_summary(r), r.get("model_version") or "-", r.get("decision") or "-")
    console.print(table)
    for r in records:
        if r.get("reason") and r["status"] != "accepted":
            reason = r["reason"]
            console.print(f"  {r['file']}: {reason.get('message')} -> {reason.get('fix', '')}", highlight=False)


@app.command()
@friendly
def batches(as_json: JsonFlag = False, quarantined: Annotated[bool, typer.Option("--quarantined", help="Only rejected files, with the reason and the fix.")] = False):
    """Every batch ever seen, newest last: intake status, drift verdict, retrain and decision."""
    from sentinel import services

    sentinel = _open()
    rows = sentinel.ledger.batches()
    if quarantined:
        rows = [r for r in rows if r.status != "accepted"]
    records = [services.batch_record(sentinel, r) for r in rows if not r.batch_id.startswith("ref-")]
    if as_json:
        _print_json(records)
    else:
        _batch_table(records, "quarantined files" if quarantined else "batches")


@app.command()
@friendly
def models(as_json: JsonFlag = False):
    """Every registered version with its aliases, decision, metrics and the batches it learned."""
    from sentinel import services

    sentinel = _open()
    records = services.model_records(sentinel)
    if as_json:
        _print_json(records)
        return
    table = Table(title=f"{sentinel.settings.registered_model} versions")
    for column in ("version", "aliases", "decision", "F1 new", "F1 champion", "delta [CI]", "p", "F1 reference", "rows", "reason"):
        table.add_column(column, overflow="fold")
    for r in records:
        t = r["tags"]
        ci = f"{t.get('f1_delta', '-')} [{t.get('ci_low', '')}, {t.get('ci_high', '')}]" if "f1_delta" in t else "-"
        table.add_row(r["version"], ",".join(r["aliases"]) or "-", t.get("decision", "-"), t.get("f1_new", "-"), t.get("f1_champion", "-"), ci, t.get("p_value", "-"), t.get("f1_reference", "-"), t.get("trained_rows", "-"), t.get("reason", ""))
    console.print(table)


@app.command()
@friendly
def predict(
    path: Annotated[Path, typer.Argument(help="CSV with a `text` column (and `label` to score it).")],
    alias: Annotated[str, typer.Option(help="Alias of the model to use.")] = "champion",
    version: Annotated[Optional[str], typer.Option(help="A version number; overrides --alias.")] = None,
    as_json: JsonFlag = False,
):
    """Predict with the champion (or another alias or version); prints accuracy and F1 when labeled."""
    from sentinel import services

    sentinel = _open()
    result = services.predict_file(sentinel, path, alias=alias, version=version)
    if as_json:
        _print_json(result)
        return
    console.print(f"model version {result['version']} on {result['rows']} rows of {path.name}")
    if "accuracy" in result:
        console.print(f"accuracy {result['accuracy']:.4f}  F1 {result['f1']:.4f}")
    for p in result["predictions"][:10]:
        console.print(f"  {p['label']}  {p['probability']:.3f}  {p['text'][:80]}", highlight=False)


@app.command()
@friendly
def demo(
    batch_rows: Annotated[int, typer.Option(help="Rows per demo batch.")] = 1000,
    reference_rows: Annotated[int, typer.Option(help="IMDB rows the first champion is trained on.")] = 5000,
    drop: Annotated[bool, typer.Option("--drop", help="Only drop the demo's files into data/incoming/, for a running `sentinel up`.")] = False,
    pause: Annotated[float, typer.Option(help="Seconds between dropped files (with --drop).")] = 3.0,
):
    """The guided loop on real reviews: a champion from IMDB, stable IMDB batches, then Rotten Tomatoes."""
    from sentinel import demo as demo_data
    from sentinel import services

    sentinel = _open()
    incoming = sentinel.settings.incoming_dir
    imdb, rotten = demo_data.reviews("imdb"), demo_data.reviews("rotten_tomatoes")
    if drop:
        for name, frame in demo_data.batches(imdb, rotten, reference_rows, batch_rows):
            if frame is None:
                (incoming / name).write_text("text;label\ngreat movie;positive\n")
            else:
                demo_data.drop(frame, incoming, name)
            console.print(f"dropped {incoming / name}")
            time.sleep(pause)
        return
    if sentinel.champion() is None:
        reference = sentinel.settings.home / "data" / "demo-reference.csv"
        imdb.head(reference_rows).to_csv(reference, index=False)
        console.rule("1. a first champion, trained on IMDB reviews")
        with console.status("training and calibrating the drift thresholds…"):
            services.bootstrap(sentinel, reference, actor="demo")
        console.print(f"champion version {sentinel.champion().version}; drift thresholds calibrated on stable splits of its training data")
    files = demo_data.batches(imdb, rotten, reference_rows, batch_rows)
    steps = [
        ("2. two stable IMDB batches: no drift, no retrain", files[0:2]),
        ("3. Rotten Tomatoes arrives: a real domain shift, so a retrain and a gate decision", files[2:5]),
        ("4. a batch whose labels were flipped upstream: flagged, never learned", files[5:6]),
        ("5. a broken file: quarantined with a reason", files[6:7]),
    ]
    for title, step in steps:
        console.rule(title)
        for name, frame in step:
            if frame is None:
                (incoming / name).write_text("text;label\ngreat movie;positive\n")
            else:
                demo_data.drop(frame, incoming, name)
        with console.status("processing…"):
            records = services.process(sentinel)
        _batch_table(records, "processed")
    console.rule("where to look")
    console.print(f"ledger: {sentinel.settings.ledger_url}   drift reports: {sentinel.settings.reports_dir}")
    console.print(f"MLflow UI: mlflow ui --backend-store-uri {sentinel.settings.mlflow_tracking_uri}")
    console.print("next: sentinel models · sentinel batches · sentinel predict FILE.csv")


def _progress(kind: str, item) -> None:
    """One line per thing that happened, for `up` and `watch`."""
    stamp = time.strftime("%H:%M:%S")
    if kind == "intake":
        if item.status == "accepted":
            console.print(f"{stamp} [green]accepted[/green] {item.file}: {item.rows} rows → batch {item.batch_id}", highlight=False)
        elif item.status != "waiting":
            reason = (item.reason or {}).get("message", "")
            console.print(f"{stamp} [yellow]{item.status}[/yellow] {item.file}: {reason}", highlight=False)
    elif kind == "drift":
        fired = [f"{s['name']} {s['score']:.3f} > {s['threshold']:.3f}" for s in item.signals if s["drifted"]]
        verdict = "[red]drift detected[/red] (" + ", ".join(fired) + ")" if item.detected else "[green]no drift[/green]"
        console.print(f"{stamp} batch {item.batch_id}: {verdict}", highlight=False)
    elif kind == "error":
        errors.print(f"{stamp} [red]error:[/red] {item}", highlight=False)


@app.command()
@friendly
def up():
    """Start everything on this machine: Prefect server, MLflow server, the deployments and the watcher."""
    from sentinel import up as services_up
    from sentinel.settings import load_settings

    console.print("starting the Prefect server and the MLflow server …")
    services_up.run(load_settings(), lambda line: console.print(f"{time.strftime('%H:%M:%S')} {line}", highlight=False), _progress)


@app.command()
@friendly
def watch():
    """Watch data/incoming/ and handle each file as it arrives (no servers needed; with
    SENTINEL_PREFECT_API_URL set, drift checks run as Prefect flow runs and events are sent)."""
    import threading

    from sentinel import services
    from sentinel.watcher import Watcher

    sentinel = _open()
    if sentinel.settings.prefect_api_url:
        from sentinel import up as services_up

        os.environ.setdefault("PREFECT_API_URL", sentinel.settings.prefect_api_url)
        check = services_up.inline_check(sentinel, console.print)
    else:
        def check(batch_id: str) -> list[str]:
            found = services.check_pending(sentinel, limit=1)
            if not sentinel.ledger.batches_awaiting_drift_check() and services.retrain_due(sentinel):
                services.retrain(sentinel)  # the last check of this sweep: learn them all at once
            return found
    console.print(f"watching {sentinel.settings.incoming_dir} (Ctrl-C stops)")
    try:
        Watcher(sentinel, check=check, notify=_progress).run(threading.Event())
    except KeyboardInterrupt:
        pass


@app.command()
@friendly
def status(as_json: JsonFlag = False):
    """Is `sentinel up` healthy, where is each UI, and what work is waiting. Exit 1 when unhealthy."""
    from sentinel import up as services_up
    from sentinel.settings import load_settings

    document = services_up.status(load_settings())
    if as_json:
        _print_json(document)
    else:
        table = Table(title="sentinel " + ("[green]healthy[/green]" if document["healthy"] else "[red]not healthy[/red]"))
        for column in ("service", "healthy", "url", "detail"):
            table.add_column(column)
        for name, service in document["services"].items():
            table.add_row(name, "yes" if service["healthy"] else "[red]no[/red]", service.get("url", ""), service.get("detail", ""))
        console.print(table)
        pending = document["pending"]
        console.print(f"waiting: {pending['files']} files, {pending['drift_checks']} drift checks, {pending['unanswered_drift']} batches with drift no retrain has answered")
    if not document["healthy"]:
        raise typer.Exit(1)


@app.command()
@friendly
def report(as_json: JsonFlag = False):
    """Make the scheduled drift report now: the batches since the last one against the reference."""
    from sentinel import drift_report

    made = drift_report.make_report(_open())
    if as_json:
        _print_json(made)
    elif made is None:
        console.print("no new batches since the last report")
    else:
        console.print(f"report of {made['batches']} batches ({made['rows']} rows) against version {made['reference_version']}: {made['html']}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
