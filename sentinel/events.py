"""Prefect events that tell the rest of the loop something happened. They are hints that start the next
step early; the ledger is the record, so a lost event delays work until `reconcile` and loses nothing.

Standalone (`sentinel process`, no `prefect_api_url`) sends nothing: Prefect would otherwise start a
temporary server inside the process just to drop the event.
"""

from __future__ import annotations

import logging

from sentinel.settings import Settings

BATCH_ACCEPTED = "sentinel.batch.accepted"
BATCH_QUARANTINED = "sentinel.batch.quarantined"
DRIFT_DETECTED = "sentinel.drift.detected"
DRIFT_CLEAR = "sentinel.drift.clear"
RETRAIN_COMPLETED = "sentinel.retrain.completed"
MODEL_PROMOTED = "sentinel.model.promoted"
MODEL_CHALLENGER = "sentinel.model.challenger"
MODEL_REJECTED = "sentinel.model.rejected"
MODEL_ROLLED_BACK = "sentinel.model.rolled_back"

log = logging.getLogger(__name__)


def batch_resource(batch_id: str) -> dict[str, str]:
    """The Prefect event resource of a batch (`sentinel.batch.<id>`)."""
    return {"prefect.resource.id": f"sentinel.batch.{batch_id}", "prefect.resource.name": batch_id, "sentinel.kind": "batch"}


def model_resource(model_name: str, version: str) -> dict[str, str]:
    """The Prefect event resource of a model version (`sentinel.model.<name>.<version>`)."""
    return {
        "prefect.resource.id": f"sentinel.model.{model_name}.{version}",
        "prefect.resource.name": f"{model_name} v{version}",
        "sentinel.kind": "model",
    }


def emit(settings: Settings, event: str, resource: dict[str, str], payload: dict | None = None) -> None:
    """Send one event to the Prefect server; never fails the caller, whose work is already recorded."""
    if not settings.prefect_api_url:
        return
    from prefect.events import emit_event

    try:
        emit_event(event=event, resource=resource, payload=payload or {})
    except Exception as error:  # the server may be down; reconcile will find the work
        log.warning("could not emit %s for %s: %s", event, resource["prefect.resource.id"], error)
