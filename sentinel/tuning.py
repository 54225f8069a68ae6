"""Model search: a small grid over model families and their regularisation, scored by cross-validation
on training rows only (the gate's held-out rows are never seen), logged to MLflow as one parent run with
one child run per candidate, and recorded in the ledger, whose latest choice is what retrains fit.

scikit-learn's `GridSearchCV` would refit each candidate's whole pipeline in every fold, tokenising the
text each time, and tokenising is most of a fit. Here the n-grams of the searched rows are counted once
per kind (word, character), and each fold only re-weights them (IDF, naive Bayes ratios learned from the
fold's training rows) before fitting the linear models. The vocabulary is then taken from every searched
row, the validation fold's included: no label crosses, and every candidate gets the same advantage."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy import sparse
from sklearn.feature_extraction.text import TfidfTransformer
from sklearn.model_selection import StratifiedKFold

from sentinel import gate, training
from sentinel.context import Sentinel
from sentinel.ledger import TuningRow
from sentinel.settings import ModelParams, TunePolicy

# Regularisation strengths per family: wide enough to span under- and over-fitting on a few thousand
# reviews, few enough that the whole search costs a few fits of one model.
GRID = {"word-lr": (4.0, 16.0), "nb-lr": (0.1, 1.0), "word-char-lr": (2.0, 8.0)}


@dataclass(frozen=True)
class Scored:
    """One candidate: its configuration and its metric on each validation fold."""

    name: str
    params: dict
    scores: tuple[float, ...]
    seconds: float  # fitting and scoring its models, without the shared n-gram counts

    @property
    def mean(self) -> float:
        """The mean over the folds: what the search ranks by."""
        return float(np.mean(self.scores))

    @property
    def std(self) -> float:
        """How much the folds disagree."""
        return float(np.std(self.scores))

    def as_dict(self) -> dict:
        """As the ledger stores it."""
        return asdict(self) | {"mean": self.mean, "std": self.std}


@dataclass(frozen=True)
class Search:
    """A finished search: every candidate scored, and the one chosen."""

    chosen: ModelParams
    candidates: tuple[Scored, ...]
    rows: int
    folds: int
    metric: str
    seconds: float

    @property
    def best(self) -> Scored:
        """The chosen candidate's scores."""
        return next(c for c in self.candidates if c.params == self.chosen.model_dump())


def candidates(base: ModelParams, texts: pd.Series, policy: TunePolicy) -> list[ModelParams]:
    """The grid for these texts: the current configuration first (so a tie keeps it), then each family's
    strengths. Character n-grams only where reviews are short: there they carry what few words do not,
    and on long reviews counting them costs more than several whole fits."""
    short = texts.str.len().median() < policy.short_text_chars
    families = [f for f in policy.families if f != "word-char-lr" or short]
    grid = [base] + [base.model_copy(update={"family": f, "C": c}) for f in families for c in GRID[f]]
    unique: dict[tuple, ModelParams] = {}
    for params in grid:
        unique.setdefault((params.family, params.C), params)
    return list(unique.values())


def name_of(params: ModelParams) -> str:
    """How a candidate is called in MLflow and on the terminal."""
    return f"{params.family} C={params.C:g}"


def sample(train: pd.DataFrame, rows: int, seed: int) -> pd.DataFrame:
    """At most `rows` training rows, each label in its share."""
    if len(train) <= rows:
        return train.reset_index(drop=True)
    share = rows / len(train)
    picked = train.groupby("label", group_keys=False).sample(frac=share, random_state=seed)
    return picked.reset_index(drop=True)


def search(train: pd.DataFrame, base: ModelParams, policy: TunePolicy, metric: str) -> Search:
    """Score every candidate by `policy.folds`-fold cross-validation on (a sample of) the training rows,
    with the gate's metric, and choose the best mean (the first listed on a tie)."""
    started = time.perf_counter()
    rows = sample(train, policy.search_rows, base.seed)
    texts, y = rows["text"], rows["label"].to_numpy(dtype=int)
    grid = candidates(base, texts, policy)
    words = training.word_counts(base).fit_transform(texts).tocsr()
    chars = training.char_counts(base).fit_transform(texts).tocsr() if any(p.family == "word-char-lr" for p in grid) else None
    binary = None
    if any(p.family == "nb-lr" for p in grid):
        binary = words.copy()
        binary.data[:] = 1
    scores: dict[int, list[float]] = {i: [] for i in range(len(grid))}
    seconds = dict.fromkeys(range(len(grid)), 0.0)
    folds = StratifiedKFold(n_splits=policy.folds, shuffle=True, random_state=base.seed)
    for fit_rows, check_rows in folds.split(texts, y):
        features = _fold_features(words, binary, chars, y, fit_rows, check_rows)
        for i, params in enumerate(grid):
            tick = time.perf_counter()
            fit_x, check_x = features[params.family]
            predicted = training.classifier(params).fit(fit_x, y[fit_rows]).predict(check_x)
            scores[i].append(float(gate.metric(metric, y[check_rows], predicted)))
            seconds[i] += time.perf_counter() - tick
    scored = tuple(Scored(name_of(p), p.model_dump(), tuple(scores[i]), seconds[i]) for i, p in enumerate(grid))
    best = max(range(len(grid)), key=lambda i: (scored[i].mean, -i))
    return Search(grid[best], scored, len(rows), policy.folds, metric, time.perf_counter() - started)


def _fold_features(words, binary, chars, y: np.ndarray, fit_rows: np.ndarray, check_rows: np.ndarray) -> dict[str, tuple]:
    """Each family's (fit, check) features of one fold, re-weighted from the fold's training rows only."""

    def tfidf(counts):
        weights = TfidfTransformer(sublinear_tf=True).fit(counts[fit_rows])
        return weights.transform(counts[fit_rows]), weights.transform(counts[check_rows])

    word_fit, word_check = tfidf(words)
    features = {"word-lr": (word_fit, word_check)}
    if binary is not None:
        nb = training.NaiveBayesScaler().fit(binary[fit_rows], y[fit_rows])
        features["nb-lr"] = (nb.transform(binary[fit_rows]), nb.transform(binary[check_rows]))
    if chars is not None:
        char_fit, char_check = tfidf(chars)
        features["word-char-lr"] = (sparse.hstack([word_fit, char_fit]).tocsr(), sparse.hstack([word_check, char_check]).tocsr())
    return features


def current_params(app: Sentinel) -> ModelParams:
    """What a retrain fits: the latest search's choice, else the settings' model."""
    latest = app.ledger.latest_tuning()
    return ModelParams(**latest.chosen) if latest is not None else app.settings.model


def tune(app: Sentinel, train: pd.DataFrame, cause: str, say: Callable[[str], None] = lambda _: None) -> TuningRow:
    """Search on these training rows, log the search to MLflow (a parent run, a child run per candidate)
    and record its choice in the ledger, which later retrains use."""
    import mlflow

    settings = app.settings
    found = app.memo("search", search, train[["text", "label"]], current_params(app), settings.tune, settings.gate.metric)
    experiment = app.registry.experiment_id(settings.training_experiment)
    with mlflow.start_run(experiment_id=experiment, run_name=f"tune-{cause}-{len(train)}rows") as parent:
        mlflow.set_tags({"sentinel.kind": "model-search", "sentinel.trigger": cause, "sentinel.chosen": name_of(found.chosen)})
        mlflow.log_params({f"chosen_{k}": v for k, v in found.chosen.model_dump().items()} | {"rows": found.rows, "folds": found.folds})
        mlflow.log_metrics(
            {f"best_cv_{found.metric}": found.best.mean, "search_seconds": found.seconds, "candidates": len(found.candidates)}
        )
        for candidate in found.candidates:
            with mlflow.start_run(experiment_id=experiment, run_name=candidate.name, nested=True):
                mlflow.set_tag("sentinel.chosen", str(candidate is found.best).lower())
                mlflow.log_params(candidate.params)
                mlflow.log_metrics(
                    {f"cv_{found.metric}": candidate.mean, f"cv_{found.metric}_std": candidate.std, "fit_seconds": candidate.seconds}
                    | {f"cv_{found.metric}_fold{i}": s for i, s in enumerate(candidate.scores)}
                )
            say(f"  {candidate.name:<22} {found.metric} {candidate.mean:.4f} ± {candidate.std:.4f}")
    with app.ledger.transaction() as session:
        row = TuningRow(
            mlflow_run_id=parent.info.run_id,
            cause=cause,
            rows=found.rows,
            metric=found.metric,
            chosen=found.chosen.model_dump(),
            candidates=[c.as_dict() for c in found.candidates],
            seconds=found.seconds,
        )
        session.add(row)
    return row
