"""The project's Evidently workspace (`<home>/evidently`), which `sentinel up` serves in the Evidently UI:
one Evidently project whose dashboard plots every signal over time, with a snapshot of every drift check
and of every scheduled drift report. The project exists from the first champion on, so the UI is never
empty."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

PROJECT = "sentinel"


def ensure_project(folder: Path, descriptors: Sequence[str]):
    """The workspace in `folder` and its project with its dashboard (one line per descriptor among the
    panels), made on first use."""
    from evidently.sdk.models import PanelMetric
    from evidently.sdk.panels import line_plot_panel
    from evidently.ui.workspace import Workspace

    workspace = Workspace(str(folder))
    found = workspace.search_project(PROJECT)
    if found:
        return workspace, found[0]
    project = workspace.create_project(PROJECT, description="Sentinel: every drift check and every scheduled drift report")
    drift_metric = "ValueDrift"
    panels = [
        ("Text drift (domain classifier ROC AUC)", [PanelMetric(legend="text", metric=drift_metric, metric_labels={"column": "text"})]),
        ("Label drift (Jensen-Shannon)", [PanelMetric(legend="label", metric=drift_metric, metric_labels={"column": "label"})]),
        (
            "Descriptor drift (normed Wasserstein)",
            [PanelMetric(legend=name, metric=drift_metric, metric_labels={"column": name}) for name in descriptors],
        ),
        (
            "Champion quality on the new batches (scheduled reports)",
            [PanelMetric(legend="accuracy", metric="Accuracy"), PanelMetric(legend="F1", metric="F1Score")],
        ),
    ]
    for title, values in panels:
        project.dashboard.add_panel(line_plot_panel(title=title, values=values, size="half"))
    project.save()
    return workspace, project


def add_snapshot(folder: Path, descriptors: Sequence[str], snapshot, name: str) -> str:
    """Add one Evidently snapshot to the project; returns its id."""
    workspace, project = ensure_project(folder, descriptors)
    return str(workspace.add_run(project.id, snapshot, name=name).id)
