"""The project's Evidently workspace (`<home>/evidently`), which `sentinel up` serves in the Evidently UI:
one Evidently project whose dashboard plots every signal over time, with a snapshot of every drift check
and of every scheduled drift report. The project exists from the first champion on, so the UI is never
empty."""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from pathlib import Path

PROJECT = "sentinel"


def ensure_project(folder: Path, descriptors: Sequence[str]):
    """The id of the project in the workspace in `folder`, made with its dashboard (one line per
    descriptor among the panels) on first use. Only the projects' metadata is read when it exists (see
    `add_snapshot`: opening a `Workspace` parses every snapshot)."""
    from evidently.ui.storage.local.base import LocalState
    from evidently.ui.workspace import Workspace

    found = _project_id(LocalState(str(folder)))
    if found is not None:
        return found
    from evidently.sdk.models import PanelMetric
    from evidently.sdk.panels import line_plot_panel

    workspace = Workspace(str(folder))  # nothing in it yet to parse
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
    return project.id


def snapshot_json(snapshot) -> str:
    """The snapshot as the JSON the workspace keeps (`LocalState.write_snapshot`'s bytes), which
    `load_snapshot` reads back. Through `_encoder`: 5 ms for a 200-row batch's snapshot against 23 ms
    for `json.dumps(model.dict())` (medians of 15), the same bytes (tests/unit/test_drift.py compares
    them with `write_snapshot`'s)."""
    return json.dumps(snapshot.to_snapshot_model(), cls=_encoder())


@functools.cache
def _encoder():
    """A JSON encoder that turns Evidently's pydantic models into dicts one level at a time, so the C
    encoder walks the widgets' large plain dicts and lists. `model.dict()` walks every one of their
    values in Python first (most of a snapshot's serialising time); `write_snapshot`'s `json.dump` on
    top always takes the pure-Python encoder. A model whose class changes `dict()` (Evidently's
    enum-value and exclude-None mixins) is asked for its own `dict()`, so the output stays the same."""
    from evidently._pydantic_compat import BaseModel
    from evidently.legacy.utils import NumpyEncoder

    class _ModelEncoder(NumpyEncoder):
        def default(self, o):
            if isinstance(o, BaseModel):
                return o.dict() if type(o).dict is not BaseModel.dict else dict(o._iter(to_dict=False))
            return super().default(o)

    return _ModelEncoder


def load_snapshot(text: str):
    """An Evidently snapshot from `snapshot_json`'s text, as the workspace reads it back."""
    from evidently._pydantic_compat import parse_obj_as
    from evidently.core.report import Snapshot
    from evidently.core.serialization import SnapshotModel

    return Snapshot.load_model(parse_obj_as(SnapshotModel, json.loads(text)))


def add_snapshot(folder: Path, descriptors: Sequence[str], snapshot, name: str) -> str:
    """Add one Evidently snapshot to the project under `name`; returns its id."""
    snapshot.set_name(name)
    return add_snapshot_json(folder, descriptors, snapshot_json(snapshot))


def add_snapshot_json(folder: Path, descriptors: Sequence[str], text: str) -> str:
    """Add one snapshot, as `snapshot_json` gave it, to the project; returns its id.

    Written through the workspace's file state, not `Workspace.add_run`: opening a `Workspace` parses every
    snapshot already in it (its dataset manager loads the whole project), so each add cost time in
    proportion to the history: 0.15 s with 10 snapshots, 2 s with 100, 17.5 s with 1,000
    (`bench/snapshot.py`), where this way takes 0.06 s at each of them. The file it writes is the one
    `add_run` writes, and the Evidently UI picks it up the same way."""
    from evidently.legacy.core import new_id
    from evidently.ui.storage.local.base import LocalState

    project_id = ensure_project(folder, descriptors)
    snapshot_id = new_id()
    state = LocalState(str(folder))
    state.location.makedirs(state._snapshot_dir(project_id))
    with state.location.open(state._snapshot_path(project_id, snapshot_id), "w") as out:
        out.write(text)
    return str(snapshot_id)


def _project_id(state):
    """The id of Sentinel's project in the workspace, if it was made; reads only the projects' metadata."""
    for project_id in state.list_projects():
        if state.read_project(project_id).name == PROJECT:
            return project_id
    return None
