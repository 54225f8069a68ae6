"""Two processes promote at the same moment, thirty times over, on a real MLflow registry and a real
ledger (SQLite, and PostgreSQL where the advisory lock joins the file lock). MLflow has no
compare-and-set on aliases, so without `claim_champion` the later writer wins whatever it is worth.
With it, the better model ends up champion every time and the alias history stays one unbroken chain."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import mlflow
import pytest

from sentinel import gate, promotion, training
from sentinel.context import Sentinel
from sentinel.ledger import ModelRow
from sentinel.locks import promotion_lock
from sentinel.settings import ModelParams
from tests.conftest import make_settings

pytestmark = pytest.mark.slow
ROUNDS = 30
# Both challengers beat version 1; version 2 is the better of the two.
QUALITY = {"1": 0.80, "2": 0.90, "3": 0.85}


def quality_gate(mine: str, champion: str) -> gate.Decision:
    delta = QUALITY[mine] - QUALITY[champion]
    outcome = "promoted" if delta > 0 else "challenger"
    return gate.Decision(
        outcome,
        f"quality {QUALITY[champion]:.2f} -> {QUALITY[mine]:.2f}",
        "accuracy",
        QUALITY[mine],
        QUALITY[champion],
        delta,
        delta,
        delta,
        0.01,
        100.0,
        "e-process",
        "shifted",
    )


def promote_in_rounds(home: str, ledger_url: str, mine: str, start, done) -> None:
    """One contender: each round, claim the champion having beaten version 1, at the same moment as the other."""
    app = Sentinel(make_settings(Path(home), ledger_url=ledger_url))
    try:
        for _ in range(ROUNDS):
            start.wait(timeout=120)
            promotion.claim_champion(app, mine, "1", lambda current: quality_gate(mine, current), f"contender-{mine}", "beat version 1")
            done.wait(timeout=120)
    finally:
        app.close()


def three_versions(app: Sentinel, imdb) -> None:
    model = training.fit(imdb.iloc[:300], ModelParams(max_features=2000))
    with mlflow.start_run(experiment_id=app.registry.experiment_id(app.settings.training_experiment)) as run:
        uri, digest, files = app.registry.log_model(model, imdb.iloc[:5][["text"]])
    for expected in QUALITY:
        assert app.registry.register(uri, {"model_sha256": digest}) == expected
        with app.ledger.transaction() as session:
            session.add(
                ModelRow(
                    model_name=app.settings.registered_model,
                    version=expected,
                    mlflow_run_id=run.info.run_id,
                    batch_ids=[],
                    artifact_sha256=digest,
                    manifest=files,
                    decision="promoted",
                )
            )


@pytest.mark.parametrize("ledger", ["sqlite", "postgresql"])
def test_two_concurrent_promotions_always_leave_the_better_model_champion(ledger, tmp_path, imdb, request):
    ledger_url = request.getfixturevalue("postgres_url") if ledger == "postgresql" else f"sqlite:///{tmp_path}/sentinel.db"
    app = Sentinel(make_settings(tmp_path, ledger_url=ledger_url))
    three_versions(app, imdb)
    context = multiprocessing.get_context("spawn")
    start, done = context.Barrier(3), context.Barrier(3)
    contenders = [context.Process(target=promote_in_rounds, args=(str(tmp_path), ledger_url, mine, start, done)) for mine in ("2", "3")]
    for process in contenders:
        process.start()
    wrong = []
    try:
        for round_ in range(ROUNDS):
            with promotion_lock(app.settings):
                promotion.move_alias(app, "champion", "1", "test", f"round {round_}: back to version 1")
                app.registry.delete_alias("challenger")
            start.wait(timeout=120)
            done.wait(timeout=120)
            if app.registry.alias_version("champion") != "2":
                wrong.append(round_)
    finally:
        for process in contenders:
            process.join(timeout=120)
            assert process.exitcode == 0
        app.close()

    assert wrong == []
    # The alias history is one chain: every move starts where the one before it ended (no lost update).
    chain = [m for m in reversed(app.ledger.alias_moves(app.settings.registered_model)) if m.alias == "champion"]
    assert all(later.from_version == earlier.to_version for earlier, later in zip(chain, chain[1:]))
    # Both orders happen: in some rounds the worse model got there first and was beaten again at once.
    worse_first = sum(m.actor == "contender-3" for m in chain)
    print(f"\n{ledger}: the worse model claimed the champion first in {worse_first} of {ROUNDS} rounds")
    tags = {v.version: v.tags for v in app.registry.versions()}
    assert tags["2"]["sentinel.role"] == "champion" and tags["1"]["sentinel.role"] == "former-champion"
