"""What a replay leaves behind: `replay.json` (everything), `replay.csv` (one row per policy and batch),
`replay.png` and `replay.html` (the curves, the summary and every batch, a page that works offline),
and, when a tracking URI is set, one MLflow run per policy under a parent run of the comparison."""

from __future__ import annotations

import csv
import html
import io
import json
from pathlib import Path

from sentinel.batch_format import spreadsheet_safe

MARKERS = {"retrained": "o", "promoted": "*"}
CSV_COLUMNS = ("policy", "batch", "file", "status", "drift", "fired", "suspect_labels", "champion_accuracy_on_batch", "retrained")
CSV_TAIL = ("decision", "decision_reason", "champion", "wall_seconds", "cpu_seconds")


def write(result: dict, out: Path) -> dict[str, Path]:
    """Every output of one replay in `out`; returns their paths by kind."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {kind: out / f"replay.{kind}" for kind in ("json", "csv", "png", "html")}
    paths["json"].write_text(json.dumps(result, indent=2, default=str) + "\n")
    paths["csv"].write_text(table_csv(result))
    figure = plot(result)
    figure.savefig(paths["png"], dpi=110, metadata={"Software": None})
    svg = io.StringIO()
    figure.savefig(
        svg, format="svg", metadata={"Date": None, "Creator": None, "Format": None, "Type": None}
    )  # the same replay, the same page
    paths["html"].write_text(page(result, svg.getvalue()))
    return paths


def table_csv(result: dict) -> str:
    """One row per policy and batch, the holdout accuracies as columns."""
    holdouts = result["holdouts"]
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([*CSV_COLUMNS, *(f"accuracy_{h}" for h in holdouts), *CSV_TAIL])
    for name, summary in result["policies"].items():
        for index, record in enumerate(summary["batches"], start=1):
            row = [name, index] + [_cell(record.get(c)) for c in CSV_COLUMNS[2:]]
            row += [record["accuracy"][h] for h in holdouts] + [_cell(record.get(c)) for c in CSV_TAIL]
            writer.writerow([spreadsheet_safe(v) for v in row])
    return buffer.getvalue()


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return " ".join(str(v) for v in value)
    return str(value)


def _plain(text: str) -> str:
    """Text matplotlib draws as it is: a `$` would start its math mode."""
    return text.replace("$", r"\$")


def plot(result: dict):
    """Accuracy on each holdout after every batch, one line per policy, markers where it retrained and
    where it promoted. Point 0 is the first champion."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    holdouts = result["holdouts"]
    files = result["files"]
    figure = Figure(figsize=(10, 3.4 * len(holdouts) + 0.8), layout="constrained")
    axes = figure.subplots(len(holdouts), 1, squeeze=False, sharex=True)[:, 0]
    for axis, holdout in zip(axes, holdouts):
        for index, (name, summary) in enumerate(result["policies"].items()):
            records = summary["batches"]
            curve = [summary["first_champion"]["accuracy"][holdout]] + [r["accuracy"][holdout] for r in records]
            # A colour and a dash per policy: baselines that agree for a while draw on top of each other.
            style = {"color": f"C{index % 10}", "linestyle": ("-", "--", "-.", ":")[index % 4], "linewidth": 2.2 - 0.3 * (index % 4)}
            (line,) = axis.plot(range(len(curve)), curve, label=_plain(name), **style)
            for kind, marker in MARKERS.items():
                hits = [i for i, r in enumerate(records, start=1) if (r.get("promoted") if kind == "promoted" else r["retrained"])]
                axis.plot(
                    hits,
                    [curve[i] for i in hits],
                    linestyle="none",
                    marker=marker,
                    markersize=11 if kind == "promoted" else 7,
                    markerfacecolor=line.get_color() if kind == "promoted" else "none",
                    markeredgecolor=line.get_color(),
                )
        axis.set_ylabel(f"accuracy on {_plain(holdout)}")
        axis.grid(alpha=0.3)
    axes[0].set_title("Champion accuracy after each batch (○ retrained, ★ promoted)")
    axes[0].legend(loc="lower right", fontsize="small")
    axes[-1].set_xticks(range(len(files) + 1), ["first champion", *(_plain(f) for f in files)], rotation=35, ha="right", fontsize="small")
    return figure


def page(result: dict, svg: str) -> str:
    """The replay as one self-contained HTML page: no script, no font, nothing fetched; every text that
    came from a batch (file names, reasons) escaped."""
    e = html.escape
    holdouts = result["holdouts"]
    head = "".join(f"<th>final {e(h)}</th><th>mean {e(h)}</th>" for h in holdouts)
    rows = []
    for name, s in result["policies"].items():
        cells = "".join(f"<td>{s['final'][h]:.3f}</td><td>{s['mean'][h]:.3f}</td>" for h in holdouts)
        rows.append(
            f"<tr><th>{e(name)}</th>{cells}<td>{s['retrains']}</td><td>{s['promotions']}</td>"
            f"<td>{s['bad_promotions']}</td><td>{s['compute_seconds']:.1f}</td></tr>"
        )
    sections = []
    for name, s in result["policies"].items():
        body = []
        for index, r in enumerate(s["batches"], start=1):
            drift = "-" if r.get("drift") is None else ("drift: " + ", ".join(r.get("fired") or []) if r["drift"] else "clear")
            accuracy = "".join(f"<td>{r['accuracy'][h]:.3f}</td>" for h in holdouts)
            body.append(
                f"<tr><td>{index}</td><td>{e(r['file'])}</td><td>{e(r['status'])}</td><td>{e(drift)}</td>"
                f"<td>{'yes' if r['retrained'] else ''}</td><td>{e(r['decision'] or '')}</td>"
                f"<td class=reason>{e(r.get('decision_reason') or r.get('reason') or '')}</td><td>{e(str(r['champion']))}</td>"
                f"{accuracy}<td>{r['wall_seconds']:.1f}</td></tr>"
            )
        acc_head = "".join(f"<th>{e(h)}</th>" for h in holdouts)
        sections.append(
            f"<h2>{e(name)}</h2><table><tr><th>#</th><th>file</th><th>status</th><th>drift</th><th>retrained</th>"
            f"<th>decision</th><th>reason</th><th>champion</th>{acc_head}<th>wall s</th></tr>{''.join(body)}</table>"
        )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sentinel replay</title>
<style>
body {{ font-family: sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }}
th, td {{ border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }}
td.reason {{ max-width: 40em; }}
figure {{ margin: 0; }} figure svg {{ max-width: 100%; height: auto; }}
</style></head>
<body>
<h1>Sentinel replay</h1>
<p>{len(result["files"])} batches from {e(result["stream"])}; holdouts: {e(", ".join(holdouts))}; seed {result["seed"]}.</p>
<figure id="plot">{_inline(svg)}</figure>
<h2>Summary</h2>
<table><tr><th>policy</th>{head}<th>retrains</th><th>promotions</th><th>bad promotions</th><th>compute s</th></tr>{"".join(rows)}</table>
{"".join(sections)}
</body></html>
"""


def _inline(svg: str) -> str:
    """The SVG document as an element of the page: no XML prolog, no doctype, no metadata block."""
    svg = svg[svg.find("<svg") :]
    start, end = svg.find("<metadata>"), svg.find("</metadata>")
    return svg[:start] + svg[end + len("</metadata>") :] if start != -1 and end != -1 else svg


def log_to_mlflow(result: dict, paths: dict[str, Path], tracking_uri: str, experiment: str = "sentinel-replay") -> str:
    """The comparison in MLflow: a parent run with the outputs as artifacts, one child run per policy
    with its summary and its accuracy curve (step = batch). Returns the parent run's id."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment(experiment)
    with mlflow.start_run(run_name=f"replay-{Path(result['stream']).name}") as parent:
        mlflow.set_tags({"sentinel.stream": result["stream"], "sentinel.policies": ",".join(result["policies"])})
        for path in paths.values():
            mlflow.log_artifact(str(path))
        for name, s in result["policies"].items():
            with mlflow.start_run(run_name=name, nested=True):
                mlflow.log_params({"policy": name, "retrains_when": s["retrains_when"], "promotes": s["promotes"]})
                metrics = {f"final_{h}": v for h, v in s["final"].items()} | {f"mean_{h}": v for h, v in s["mean"].items()}
                metrics |= {k: s[k] for k in ("retrains", "promotions", "bad_promotions", "compute_seconds")}
                mlflow.log_metrics(metrics)
                for step, record in enumerate(s["batches"], start=1):
                    mlflow.log_metrics({f"accuracy_{h}": v for h, v in record["accuracy"].items()}, step=step)
        return parent.info.run_id
