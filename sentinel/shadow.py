"""Shadow evaluation: every labeled batch is a free test set. Before anything learns a batch, the live
challenger (a model the gate kept because its evidence was not yet enough) is scored on it beside the
champion; the paired differences add to its e-process (`gate.Evidence`), and it is promoted as soon as
the evidence says so, or retired when it says the opposite, when a newer challenger supersedes it, or
when it has waited too long. The evidence lives on the version's ledger row."""

from __future__ import annotations

import numpy as np
import pandas as pd

from sentinel import gate, locks
from sentinel.context import Sentinel
from sentinel.ledger import ModelRow, TrainingRunRow
from sentinel.promotion import claim_champion, retire
from sentinel.references import ensure_reference
from sentinel.row_slices import predict_in_slices


def live_challenger(app: Sentinel, champion: ModelRow) -> ModelRow | None:
    """The newest version the gate kept as challenger against this champion, with its evidence."""
    for row in reversed(app.ledger.models(app.settings.registered_model)):
        if row.decision == "challenger" and row.evidence and row.evidence.get("champion_version") == champion.version:
            return row
    return None


def evaluate(app: Sentinel, champion: ModelRow, frame: pd.DataFrame, champion_predictions, batch_ids: list[str]) -> dict | None:
    """Score the live challenger on a batch nothing has learned yet, carry the evidence forward, and act
    on it. Returns what happened (for the batch's drift-check record), or None without a challenger."""
    row = live_challenger(app, champion)
    if row is None:
        return None
    y_true = frame["label"].to_numpy(dtype=int)
    challenger = np.asarray(predict_in_slices(app.load_model(row).predict, frame[["text"]]), dtype=int)
    look = gate.SliceScores(y_true, np.asarray(champion_predictions, dtype=int), challenger)
    evidence, verdict, why = gate.shadow(gate.Evidence.from_dict(row.evidence), look, app.settings.gate, tuple(batch_ids))
    with app.ledger.transaction() as session:
        session.get(ModelRow, (row.model_name, row.version)).evidence = evidence.as_dict()
    record = {
        "version": row.version,
        "verdict": verdict,
        "why": why,
        "rows": look.rows,
        "champion": float(np.mean(look.champion == y_true)),
        "challenger": float(np.mean(challenger == y_true)),
        "e_value": evidence.e_better,
    }
    if verdict == "promote":
        record["outcome"] = _promote(app, row, champion, evidence, why)
    elif verdict == "retire":
        with locks.promotion_lock(app.settings):
            retire(app, row.version, why, "sentinel")
    return record


def _promote(app: Sentinel, row: ModelRow, champion: ModelRow, evidence: gate.Evidence, why: str) -> str:
    """The compare-and-set of a promotion the shadow evidence decided: against the champion the evidence
    was gathered on, or not at all (evidence against another model proves nothing about this one)."""
    # The champion's expected accuracy, for the performance signal, is the one measured on the freshest rows.
    ensure_reference(app, row, expected=(evidence.challenger_accuracy, evidence.rows))

    def stale(current: str) -> gate.Decision:
        return gate.Decision.unmeasured(
            "retired", f"version {current} became champion while the evidence was gathered against {champion.version}", evidence.metric
        )

    outcome = claim_champion(app, row.version, champion.version, stale, "sentinel", why, row.training_run_id)
    if outcome == "promoted":
        app.registry.set_tags(row.version, {"decision": "promoted", "reason": why, "e_value": round(evidence.e_better, 4)})
        with app.ledger.transaction() as session:
            session.get(ModelRow, (row.model_name, row.version)).decision = "promoted"
            if row.training_run_id is not None:
                run = session.get(TrainingRunRow, row.training_run_id)
                run.decision, run.reason = "promoted", why
    return outcome
