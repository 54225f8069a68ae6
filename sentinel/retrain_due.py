"""Whether a retrain is due, and what it would learn: reads of the ledger and the registry only, so
that `process` and the watcher decide without importing scikit-learn or Evidently when nothing is."""

from __future__ import annotations

from collections.abc import Iterable

from sentinel import gate
from sentinel.context import Sentinel
from sentinel.ledger import CHECKED, DRIFTED, BatchRow, ModelRow
from sentinel.shadow import live_challenger


def batches_to_learn(app: Sentinel, champion: ModelRow, accepted: Iterable[BatchRow] | None = None) -> list[BatchRow]:
    """Accepted, drift-checked batches the champion has not learned, minus those whose labels looked
    inverted and those kept out since (labels the gate could not learn, or a person's rejection).
    `accepted`: the accepted batches, when the caller has read them already."""
    learned = set(champion.batch_ids)
    return [
        b
        for b in (app.ledger.batches(status="accepted") if accepted is None else accepted)
        if b.batch_id not in learned and b.drift_status in CHECKED and not b.suspect_labels and not b.excluded
    ]


def retrain_due(app: Sentinel) -> bool:
    """A drift verdict that no retrain has answered yet, or enough harmlessly drifted rows waiting to be
    learned (see `refresh_due`). A refresh waits while a challenger whose evidence so far leans towards
    "better" has seen fewer than `gate.shadow_wait_batches` later batches: a new challenger would
    supersede it and start its evidence from nothing, so with small batches none would ever gather
    enough. Harmful drift does not wait: the champion is losing accuracy now."""
    if app.ledger.unanswered_drift():
        return True
    champion = app.champion()
    if champion is None:
        return False
    live = live_challenger(app, champion)
    if live is not None:
        evidence = gate.Evidence.from_dict(live.evidence)
        if evidence.e_better >= 1 and evidence.looks <= app.settings.gate.shadow_wait_batches:
            return False
    return refresh_due(app, champion)


def refresh_due(app: Sentinel, champion: ModelRow) -> bool:
    """Rows of batches that drifted without harm, and that no retrain has tried yet, add up to
    `training.refresh_share` of the rows the champion learned. Harmful drift stops once the champion
    copes with the new data, but a model keeps improving with more of it; a refresh at geometric steps
    follows that at a small share of always retraining. Stable batches (no drift) never count: while the
    data is stable nothing retrains.

    With `training.refresh_first`, the first such batch against a champion that learned no drifted
    batch yet starts one at once (a probe): a new domain the champion copes with as well as with its own
    can still be learned for a gain, and small batches would otherwise wait for many of them."""
    share = app.settings.training.refresh_share
    if not share or champion.training_run_id is None:
        return False
    accepted = {b.batch_id: b for b in app.ledger.batches(status="accepted")}
    waiting = [b for b in batches_to_learn(app, champion, accepted.values()) if b.drift_status == "harmless"]
    untried = sum(b.rows for b in waiting if b.trained_in is None)
    if app.settings.training.refresh_first and untried and not any(b.trained_in is not None for b in waiting):
        learned_drift = any(accepted[b].drift_status in DRIFTED for b in champion.batch_ids if b in accepted)
        if not learned_drift:
            return True
    learned = app.ledger.training_run(champion.training_run_id).trained_rows
    return untried >= share * learned
