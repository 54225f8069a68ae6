"""What a person reads about a drift verdict or a gate decision, as Markdown built from what the ledger
recorded: the flows publish it as Prefect artifacts, and a registered version's description in the
MLflow UI shares its table of slices. Light on purpose (no MLflow, no Evidently): it only formats."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from sentinel.ledger import BatchRow, DriftCheckRow, TrainingRunRow, TuningRow
from sentinel.settings import ModelParams


def as_code(text: str) -> str:
    """A user's text (a file's name) as a Markdown code span, with nothing inside that could close it: it
    renders as text, never as markup."""
    return "`" + " ".join(str(text).replace("`", "'").split()) + "`"


def _number(value: object, digits: int = 4) -> str:
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        return "–"
    return f"{value:.{digits}f}"


@dataclass(frozen=True)
class Links:
    """Where the MLflow UI shows a run or a version; without a server (`sentinel process` on a local
    store) there is no page to link, and the ids are given instead."""

    mlflow_url: str | None
    model_name: str

    def run(self, run_id: str | None) -> str:
        """A link to an MLflow run's page, or its id."""
        if not run_id:
            return "no MLflow run"
        return f"[MLflow run {run_id[:8]}]({self.mlflow_url}/#/runs/{run_id})" if self.mlflow_url else f"MLflow run `{run_id}`"

    def version(self, version: str | None) -> str:
        """A link to a registered version's page, or its number."""
        if not version:
            return "no version"
        if not self.mlflow_url:
            return f"version {version} of `{self.model_name}`"
        return f"[version {version} of {self.model_name}]({self.mlflow_url}/#/models/{self.model_name}/versions/{version})"


def slice_table(slices: Iterable[dict]) -> list[str]:
    """The gate's slices as Markdown table lines: rows, both models, the delta with its interval, the verdict."""
    lines = ["| slice | test | rows | champion | challenger | delta [interval] | verdict |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for s in slices:
        interval = f"[{s['ci_low']:+.4f}, {s['ci_high']:+.4f}]" if math.isfinite(s["ci_low"]) and math.isfinite(s["ci_high"]) else ""
        delta = f"{s['delta']:+.4f}" if math.isfinite(s["delta"]) else "–"
        lines.append(
            f"| {s['name']} | {s['test']} | {s['rows']} | {_number(s['champion'])} | {_number(s['challenger'])} | {' '.join(filter(None, (delta, interval)))} | {s['verdict']} |"
        )
    return lines


def gate_lines(comparison: dict) -> list[str]:
    """The gate's numbers from a decision as the ledger stores it (`Decision.as_dict`): the metric and
    the rule, each slice, and the anytime-valid evidence; nothing for a decision without slices."""
    if not comparison.get("slices"):
        return []
    lines = [
        "",
        f"Gate ({comparison['metric']}, rule: {comparison['rule']}; deciding slice: {comparison['deciding_slice']}):",
        "",
        *slice_table(comparison["slices"]),
    ]
    if math.isfinite(comparison.get("e_value", math.nan)):
        lines += ["", f"Anytime-valid evidence: e-value {comparison['e_value']:.3g} (p = {comparison['p_value']:.3g})."]
    return lines


def model_line(params: ModelParams, search: TuningRow | None) -> str:
    """The model a version is, and the search that chose it (MLflow run of its parent and its score)."""
    model = f"Model: `{params.family}` (C={params.C:g}, word n-grams up to {params.ngram_max})"
    if search is None or search.chosen != params.model_dump():
        return model + ", from the settings."
    best = next((c for c in search.candidates if c["params"] == search.chosen), None)
    score = (
        f" ({search.metric} {best['mean']:.4f} ± {best['std']:.4f} in {len(search.candidates)}-candidate cross-validation)" if best else ""
    )
    return model + f", chosen by the model search of MLflow run `{search.mlflow_run_id}`{score}."


def drift_markdown(batches: list[BatchRow], check: DriftCheckRow, links: Links) -> str:
    """A drift check: the verdict and the rule that acted on it, each signal against its threshold, the
    champion's accuracy on the batch, and what the live challenger scored on it in shadow."""
    files = ", ".join(as_code(b.file_name) for b in batches)
    trigger = check.trigger or {}
    fired = trigger.get("fired")
    status = batches[0].drift_status
    verdict = {"detected": "drift: a retrain is due", "harmless": "drift, but the retrain rule lets it pass", "clear": "no drift"}
    lines = [
        f"### Drift check of {files} against champion v{check.reference_version}",
        "",
        f"**{verdict.get(status, status)}** (rule `{trigger.get('rule', '?')}`: {trigger.get('why', '')}; retrain due: {'yes' if fired else 'no'})",
        "",
        "| signal | method | score | threshold | drifted |",
        "| --- | --- | --- | --- | --- |",
    ]
    lines += [
        f"| {s['name']} | {s['method']} | {_number(s['score'])} | {_number(s['threshold'])} | {'**yes**' if s['drifted'] else 'no'} |"
        for s in check.signals
    ]
    accuracy = trigger.get("accuracy")
    if accuracy:
        lines += [
            "",
            f"The champion's accuracy on these {accuracy['rows']} rows: {_number(accuracy['accuracy'])} "
            f"(expected {_number(accuracy['expected'])}).",
        ]
    if batches[0].suspect_labels:
        lines += ["", "The labels look inverted: this batch is not learned until a person looks (`sentinel batches`)."]
    if check.pool:
        complete = "" if check.pool.get("complete", True) else ", measured short of the minimum rows because it waited too long"
        lines += ["", f"Measured as one pool of {len(check.pool['members'])} small batches ({check.pool['rows']} rows{complete})."]
    if check.shadow:
        s = check.shadow
        lines += [
            "",
            f"In shadow, challenger v{s['version']} scored {_number(s['challenger'])} against the champion's {_number(s['champion'])} "
            f"on {s['rows']} rows (e-value {s['e_value']:.3g}): {s['verdict']}, {s['why']}.",
        ]
    report = f"report `{check.report_path}`"
    if check.report_path and not check.report_path.endswith(".html"):
        report += f" (as a page: `sentinel report --batch {check.batch_id}`)"
    lines += ["", f"{links.run(check.mlflow_run_id)} · {report}"]
    return "\n".join(lines)


def decision_markdown(run: TrainingRunRow, links: Links) -> str:
    """A retrain's decision: what it learned, the verdict and its reason, the metric on each slice with
    its interval, the anytime-valid evidence, and links to the MLflow run and the registered version."""
    comparison = run.comparison or {}
    lines = [
        f"### {run.run_name}: {run.decision}",
        "",
        f"**{run.decision}**: {run.reason}",
        "",
        f"Learned {len(run.batch_ids)} new batches, {run.trained_rows} training rows in all; "
        f"cause: {comparison.get('cause', 'bootstrap')}; champion compared: v{comparison.get('champion_version', '–')}.",
    ]
    lines += gate_lines(comparison)
    lines += ["", f"{links.version(run.model_version)} · {links.run(run.mlflow_run_id)}"]
    return "\n".join(lines)
