"""`sentinel`: the command line of the loop. Read commands take `--json` and print one JSON document."""

from __future__ import annotations

import functools
import gc
import json
import os
import sys
import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from pydantic import ValidationError
from rich.markup import escape
from rich.table import Table

from sentinel.errors import SentinelError, TamperedModel
from sentinel.replay_cli import replay_command
from sentinel.terminal import batch_table, console, errors, models_table, print_lineage, progress, report_failure, stop_like_ctrl_c

app = typer.Typer(
    help="Sentinel keeps a review-sentiment classifier fresh: drop labeled CSV batches into data/incoming/ and it checks drift, retrains and gates.",
    no_args_is_help=True,
    add_completion=False,
)
JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON document instead of a table.")]


def friendly(command):
    """A user's mistake becomes one clear line on stderr and exit code 1, never a traceback."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except TamperedModel as error:
            errors.print(f"[red]error:[/red] {escape(str(error))}", highlight=False)
            raise typer.Exit(1) from None
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            errors.print(
                f"[red]error:[/red] setting {where}: {first['msg']} (check sentinel.toml and SENTINEL_* variables)", highlight=False
            )
            raise typer.Exit(1) from None
        except Exception as error:
            code = report_failure(error)
            if code is None:
                raise
            raise typer.Exit(code) from None

    return wrapper


# MLflow retries a failed request for about five minutes by default, which suits a loop that outlives a
# server restart, not a person waiting: read and operator commands give up within seconds, and the
# one-shot commands that upload models (process, bootstrap, demo, report) retry less but keep MLflow's
# request timeout for their uploads. `watch` is the loop and keeps MLflow's defaults.
AT_PROMPT = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1", "MLFLOW_HTTP_REQUEST_TIMEOUT": "5"}
ONE_SHOT = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1"}


def _open(mlflow_waits: dict[str, str] | None = AT_PROMPT):
    from sentinel.context import Sentinel
    from sentinel.settings import load_settings

    for name, value in (mlflow_waits or {}).items():
        os.environ.setdefault(name, value)  # a person's own MLFLOW_HTTP_* settings win
    return Sentinel(load_settings())


def _actor(by: str | None) -> str:
    from sentinel.context import os_user

    return by or os_user()


def _print_json(document) -> None:
    sys.stdout.write(json.dumps(document, indent=2, default=str) + "\n")


@app.command()
@friendly
def bootstrap(
    reference: Annotated[Optional[Path], typer.Option("--reference", help="Labeled CSV (text,label) for the first champion.")] = None,
    demo_rows: Annotated[int, typer.Option("--demo", help="Instead of a file: this many IMDB reviews from the demo data.")] = 0,
    tune: Annotated[
        Optional[bool], typer.Option("--tune/--no-tune", help="Search model families first (default: tune.at_bootstrap).")
    ] = None,
):
    """Train the first champion on a labeled CSV and make that data the drift reference."""
    from sentinel import retraining

    sentinel = _open(ONE_SHOT)
    if (reference is None) == (demo_rows <= 0):
        raise SentinelError("give either --reference FILE.csv or --demo ROWS")
    if reference is None:
        from sentinel import demo as demo_data

        reference = sentinel.settings.home / "data" / "demo-reference.csv"
        demo_data.reviews("imdb").head(demo_rows).to_csv(reference, index=False)
    with console.status("training the first champion and calibrating drift thresholds…"):
        model = retraining.bootstrap(sentinel, reference, tune=tune)
    console.print(f"champion: version {model.version} of {sentinel.settings.registered_model}, trained on {reference.name}")


@app.command()
@friendly
def tune(as_json: JsonFlag = False):
    """Search model families and their regularisation on the rows the next retrain learns (cross-validation
    on training rows only): one MLflow parent run, a child run per candidate. Retrains use the choice."""
    from sentinel import retraining, tuning
    from sentinel.terminal import tuning_table

    sentinel = _open(ONE_SHOT)
    train = retraining.training_data(sentinel, sentinel.require_champion()).train
    with console.status(f"searching on at most {sentinel.settings.tune.search_rows} of {len(train)} training rows…"):
        found = tuning.tune(sentinel, train, "tune")
    if as_json:
        return _print_json({c: getattr(found, c) for c in ("mlflow_run_id", "rows", "metric", "chosen", "candidates", "seconds")})
    tuning_table(found)


@app.command()
@friendly
def process(as_json: JsonFlag = False):
    """Handle every file waiting in data/incoming/ (intake, drift check, retrain if due) and exit."""
    from sentinel import loop

    sentinel = _open(ONE_SHOT)
    records = loop.process(sentinel)
    if as_json:
        _print_json(records)
        return
    if not records:
        console.print(f"nothing waiting in {sentinel.settings.incoming_dir}")
        return
    batch_table(records, "processed")


@app.command()
@friendly
def batches(
    as_json: JsonFlag = False,
    quarantined: Annotated[bool, typer.Option("--quarantined", help="Only rejected files, with the reason and the fix.")] = False,
):
    """Every batch ever seen, newest last: intake status, drift verdict, retrain and decision."""
    from sentinel import read_models

    sentinel = _open()
    rows = sentinel.ledger.batches()
    if quarantined:
        rows = [r for r in rows if r.status != "accepted"]
    records = read_models.batch_records(sentinel, [r for r in rows if not r.batch_id.startswith("ref-")])
    if as_json:
        _print_json(records)
    else:
        batch_table(records, "quarantined files" if quarantined else "batches")


@app.command()
@friendly
def models(
    as_json: JsonFlag = False,
    role: Annotated[Optional[str], typer.Option(help="Only versions with this role or alias (champion, challenger, rejected, …).")] = None,
    decision: Annotated[Optional[str], typer.Option(help="Only versions with this gate decision (promoted, challenger, rejected).")] = None,
):
    """Every registered version: aliases, role, the gate's decision and its numbers, the drift that caused
    it, the batches it learned, and a person's review."""
    from sentinel import read_models

    sentinel = _open()
    records = read_models.filter_records(read_models.model_records(sentinel), role, decision)
    if as_json:
        _print_json(records)
        return
    models_table(records, f"{sentinel.settings.registered_model} versions")


@app.command()
@friendly
def show(version: Annotated[str, typer.Argument(help="A version number.")], as_json: JsonFlag = False):
    """The lineage of one version: batch files → drift checks → retrain run → gate → alias moves."""
    from sentinel import read_models

    found = read_models.lineage(_open(), version)
    if as_json:
        _print_json(found)
        return
    print_lineage(found)


@app.command()
@friendly
def history(as_json: JsonFlag = False):
    """Every alias move, newest first: from, to, why, and by whom (Sentinel or a person)."""
    from sentinel import read_models

    moves = read_models.history(_open())
    if as_json:
        _print_json(moves)
        return
    table = Table(title="alias moves, newest first")
    for column in ("when", "alias", "from", "to", "by", "why"):
        table.add_column(column, overflow="fold")
    for m in moves:
        table.add_row(m["at"][:19], m["alias"], m["from"] or "-", m["to"] or "-", escape(m["by"]), escape(m["reason"] or ""))
    console.print(table)


Reason = Annotated[str, typer.Option("--reason", help="Why; kept in the ledger and on the version's tags.")]
By = Annotated[Optional[str], typer.Option("--by", help="Who; default the OS user.")]


@app.command()
@friendly
def promote(version: Annotated[str, typer.Argument(help="The version to make champion.")], reason: Reason, by: By = None):
    """Make a version champion by hand (the gate is overruled; `sentinel rollback` undoes it)."""
    from sentinel import promotion

    done = promotion.promote(_open(), version, reason, _actor(by))
    console.print(f"version {done['version']} is champion (was {done['previous_champion'] or 'none'})")


@app.command()
@friendly
def reject(version: Annotated[str, typer.Argument(help="The version to reject.")], reason: Reason, by: By = None):
    """Reject a version: it loses the challenger alias and its new batches are not offered to a retrain."""
    from sentinel import promotion

    done = promotion.reject(_open(), version, reason, _actor(by))
    console.print(f"version {done['version']} rejected")


@app.command()
@friendly
def rollback(reason: Reason, by: By = None):
    """Give the champion alias back to the previous champion."""
    from sentinel import promotion

    done = promotion.rollback(_open(), reason, _actor(by))
    console.print(f"version {done['version']} is champion again (version {done['rolled_back']} rolled back)")


@app.command()
@friendly
def review(
    version: Annotated[str, typer.Argument(help="The version reviewed.")],
    approve: Annotated[bool, typer.Option("--approve", help="Sign it off.")] = False,
    reject_it: Annotated[bool, typer.Option("--reject", help="Do not sign it off.")] = False,
    note: Annotated[str, typer.Option("--note", help="What you looked at.")] = "",
    by: By = None,
):
    """Record a person's review on the version's tags (sentinel.review, review_note, reviewed_by)."""
    from sentinel import promotion

    if approve == reject_it:
        raise SentinelError("give exactly one of --approve or --reject")
    done = promotion.review(_open(), version, approve, note, _actor(by))
    console.print(f"version {done['version']}: review {done['review']} by {done['reviewed_by']}")


@app.command()
@friendly
def requeue(
    file: Annotated[
        str, typer.Argument(help="The name of a file in data/quarantine/ (fixed, usually), or the id of a batch kept out of training.")
    ],
):
    """Put a quarantined file back into data/incoming/ to be taken in again, or let the next retrain learn
    a batch the gate kept out (its labels could not be learned) or that went with a rejected version."""
    from sentinel import taking_in

    app_ = _open()
    if app_.ledger.batch(file) is not None:
        console.print(taking_in.readmit(app_, file))
        return
    target = taking_in.requeue(app_, file)
    console.print(f"moved back to {target}")


@app.command()
@friendly
def predict(
    path: Annotated[Path, typer.Argument(help="CSV with a `text` column (and `label` to score it).")],
    alias: Annotated[str, typer.Option(help="Alias of the model to use.")] = "champion",
    version: Annotated[Optional[str], typer.Option(help="A version number; overrides --alias.")] = None,
    as_json: JsonFlag = False,
):
    """Predict with the champion (or another alias or version); prints accuracy and F1 when labeled."""
    from sentinel import prediction

    sentinel = _open()
    result = prediction.predict_file(sentinel, path, alias=alias, version=version)
    if as_json:
        _print_json(result)
        return
    console.print(f"model version {result['version']} on {result['rows']} rows of {path.name}")
    if "accuracy" in result:
        console.print(f"accuracy {result['accuracy']:.4f}  F1 {result['f1']:.4f}")
    for p in result["predictions"][:10]:
        console.print(f"  {p['label']}  {p['probability']:.3f}  {escape(p['text'][:80])}", highlight=False)


@app.command()
@friendly
def demo(
    batch_rows: Annotated[int, typer.Option(help="Rows per demo batch.")] = 1000,
    reference_rows: Annotated[int, typer.Option(help="IMDB rows the first champion is trained on.")] = 5000,
    drop: Annotated[
        bool, typer.Option("--drop", help="Only drop the demo's files into data/incoming/, for a running `sentinel up`.")
    ] = False,
    pause: Annotated[float, typer.Option(help="Seconds between dropped files (with --drop).")] = 3.0,
    replay: Annotated[
        bool, typer.Option("--replay", help="Instead: replay the demo's stream with the four built-in policies (see `sentinel replay`).")
    ] = False,
    out: Annotated[Path, typer.Option("--out", help="Where --replay writes its outputs.")] = Path("replay-out"),
    json_output: JsonFlag = False,
):
    """The guided loop on real reviews: a champion from IMDB, stable IMDB batches, then Rotten Tomatoes."""
    from sentinel import demo as demo_data
    from sentinel import loop, retraining
    from sentinel.settings import project_home, redacted

    if replay:
        from sentinel.replay_cli import demo_replay

        demo_replay(project_home(), out, json_output)
        return
    sentinel = _open(ONE_SHOT)
    incoming = sentinel.settings.incoming_dir
    imdb, rotten = demo_data.reviews("imdb"), demo_data.reviews("rotten_tomatoes")
    if drop:
        for name, frame in demo_data.batches(imdb, rotten, reference_rows, batch_rows):
            demo_data.drop_demo_file(incoming, name, frame)
            console.print(f"dropped {incoming / name}")
            time.sleep(pause)
        return
    if sentinel.champion() is None:
        reference = sentinel.settings.home / "data" / "demo-reference.csv"
        imdb.head(reference_rows).to_csv(reference, index=False)
        console.rule("1. a first champion, trained on IMDB reviews")
        with console.status("training and calibrating the drift thresholds…"):
            retraining.bootstrap(sentinel, reference, actor="demo")
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
            demo_data.drop_demo_file(incoming, name, frame)
        with console.status("processing…"):
            records = loop.process(sentinel)
        batch_table(records, "processed")
    console.rule("where to look")
    console.print(f"ledger: {redacted(sentinel.settings.ledger_url)}   drift reports: {sentinel.settings.reports_dir}")
    console.print(f"MLflow UI: mlflow ui --backend-store-uri {redacted(sentinel.settings.mlflow_tracking_uri)}")
    console.print("next: sentinel models · sentinel batches · sentinel predict FILE.csv")


app.command("replay")(friendly(replay_command))


@app.command()
@friendly
def up():
    """Start everything on this machine: Prefect server, MLflow server, the deployments and the watcher."""
    # `up` runs the Prefect flows in its own process, and the library never imports the Prefect layer:
    # the command hands this process over to the layer's entry point (same PID, same signals, same output).
    _hand_over("deployments.up")


@app.command()
@friendly
def watch():
    """Watch data/incoming/ and handle each file as it arrives (no servers needed; with
    SENTINEL_PREFECT_API_URL set, drift checks run as Prefect flow runs and events are sent)."""
    import threading

    from sentinel import drift_checks, retrain_due, retraining
    from sentinel.pools import ready_batches
    from sentinel.watcher import Watcher

    sentinel = _open(None)
    if sentinel.settings.prefect_api_url:
        sentinel.close()
        _hand_over("deployments.watch")

    def check(batch_id: str) -> list[str]:
        found = drift_checks.check_pending(sentinel, limit=1)
        if not ready_batches(sentinel) and retrain_due.retrain_due(sentinel):
            retraining.retrain(sentinel)  # the last check of this sweep: learn them all at once
        return found

    stop_like_ctrl_c()
    console.print(f"watching {sentinel.settings.incoming_dir} (Ctrl-C stops)")
    try:
        Watcher(sentinel, check=check, notify=progress).run(threading.Event())
    except KeyboardInterrupt:
        pass


def _hand_over(module: str) -> None:
    """Replace this process with `python -m module` of the Prefect layer."""
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, "-m", module])


@app.command()
@friendly
def status(as_json: JsonFlag = False):
    """Is `sentinel up` healthy, where is each UI, and what work is waiting. Exit 1 when unhealthy."""
    from sentinel import up as supervisor
    from sentinel.settings import load_settings

    document = supervisor.status(load_settings())
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
        console.print(
            f"waiting: {pending['files']} files, {pending['drift_checks']} drift checks, {pending['unanswered_drift']} batches with drift no retrain has answered"
        )
    if not document["healthy"]:
        raise typer.Exit(1)


@app.command()
@friendly
def doctor(
    as_json: JsonFlag = False,
    repair: Annotated[
        bool, typer.Option("--repair", help="Mend what can be mended safely (files are moved aside, never deleted).")
    ] = False,
):
    """Check that the ledger, the stored files and the MLflow registry agree. Exit 1 when they do not."""
    from sentinel import doctor as checkup

    found = checkup.examine(_open(), repair=repair)
    if as_json:
        _print_json(found)
    else:
        for check in found["checks"]:
            console.print(("[green]ok[/green]  " if check["ok"] else "[red]NO[/red]  ") + check["name"], highlight=False)
            for line in [f"repaired: {r}" for r in check["repaired"]] + check["problems"]:
                console.print(escape(f"      {line}"), highlight=False)
    if not found["ok"]:
        raise typer.Exit(1)


@app.command()
@friendly
def report(
    as_json: JsonFlag = False,
    batch: Annotated[Optional[str], typer.Option("--batch", help="Instead: the HTML report of this batch's drift check.")] = None,
):
    """Make the scheduled drift report now: the batches since the last one against the reference."""
    from sentinel import drift_report

    if batch is not None:
        made = {"batch": batch, "html": str(drift_report.check_html(_open(), batch))}
        line = f"drift check of {batch}: {made['html']}"
    else:
        made = drift_report.make_report(_open(ONE_SHOT))
        line = "no new batches since the last report"
        if made is not None:
            line = f"report of {made['batches']} batches ({made['rows']} rows) against version {made['reference_version']}: {made['html']}"
    if as_json:
        _print_json(made)
    else:
        console.print(line, highlight=False)


def main() -> None:
    """The `sentinel` console script."""
    try:
        app()
    finally:
        # The collections Python runs while it shuts down walk every object the libraries left behind
        # (0.4-0.8 s of a one-shot command's wall time here); frozen objects are skipped, and nothing a
        # finished command needs happens in them (atexit handlers and flushes still run).
        gc.freeze()


if __name__ == "__main__":
    main()
