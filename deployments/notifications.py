"""Messages a person wants: a promotion, a rejected challenger, a quarantined file, a failed flow run.

Prefect sends them: one webhook notification block and one automation per kind of message, each an
event trigger with a send-notification action. `deployments/serve.py` applies this at every start, so
the automations follow the settings: with `up.notify_webhook_url` empty, Sentinel's automations
are removed and nothing is sent.
"""

from __future__ import annotations

from prefect.automations import Automation
from prefect.blocks.notifications import CustomWebhookNotificationBlock
from prefect.events.actions import SendNotification
from prefect.events.schemas.automations import EventTrigger, Posture

from sentinel import events
from sentinel.settings import Settings

BLOCK = "sentinel-notifications"
SENTINEL_RUNS = {"prefect.resource.id": "prefect.tag.sentinel"}  # the deployments are tagged "sentinel"

# name: (events, related resources to match, subject, body); bodies are Prefect templates over the event
NOTICES = {
    "sentinel: model promoted": (
        {events.MODEL_PROMOTED},
        None,
        "Sentinel: {{ event.resource['prefect.resource.name'] }} is the new champion",
        "{{ event.payload.reason }} (by {{ event.payload.by or 'the gate' }})",
    ),
    "sentinel: challenger rejected": (
        {events.MODEL_REJECTED},
        None,
        "Sentinel: {{ event.resource['prefect.resource.name'] }} was rejected",
        "{{ event.payload.reason }}",
    ),
    "sentinel: file quarantined": (
        {events.BATCH_QUARANTINED},
        None,
        "Sentinel: {{ event.payload.file }} was quarantined",
        "{{ event.payload.reason.message }} — {{ event.payload.reason.fix }}",
    ),
    "sentinel: flow run failed": (
        {"prefect.flow-run.Failed", "prefect.flow-run.Crashed"},
        SENTINEL_RUNS,
        "Sentinel: flow run {{ event.resource['prefect.resource.name'] }} did not finish ({{ event.event }})",
        "{{ event.payload.validated_state.message }}",
    ),
}


def _existing(name: str) -> Automation | None:
    try:
        return Automation.read(name=name)
    except ValueError:
        return None


def configure(settings: Settings) -> list[str]:
    """Create, update or remove Sentinel's automations to match the settings; returns their names."""
    url = settings.up.notify_webhook_url
    if not url:
        for name in NOTICES:
            if found := _existing(name):
                found.delete()
        return []
    block = CustomWebhookNotificationBlock(name="Sentinel", url=url, json_data={"subject": "{{subject}}", "text": "{{body}}"})
    block_id = block.save(BLOCK, overwrite=True)
    for name, (expected, related, subject, body) in NOTICES.items():
        trigger = EventTrigger(expect=expected, match_related=related or {}, posture=Posture.Reactive, threshold=1)
        automation = Automation(
            name=name, trigger=trigger, actions=[SendNotification(block_document_id=block_id, subject=subject, body=body)]
        )
        if found := _existing(name):
            automation.id = found.id
            automation.update()
        else:
            automation.create()
    return list(NOTICES)
