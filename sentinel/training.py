"""Training: assemble the data a challenger learns from, fit it, and score models on held-out rows."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction.text import CountVectorizer, TfidfTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score
from sklearn.pipeline import Pipeline

from sentinel.row_slices import predict_in_slices
from sentinel.settings import ModelParams
from sentinel.vocabulary import PrunedCountVectorizer


def word_counts(params: ModelParams, binary: bool = False) -> CountVectorizer:
    """Counts of word n-grams (1 to `ngram_max`), the features every family starts from. Pruned while
    counting (`sentinel.vocabulary`): the same vocabulary at half the memory. Characters stay with
    scikit-learn's own, which is faster and leaner on their few distinct n-grams (measured)."""
    return PrunedCountVectorizer(
        ngram_range=(1, params.ngram_max), min_df=params.min_df, max_features=params.max_features, binary=binary, dtype=np.float32
    )


def char_counts(params: ModelParams) -> CountVectorizer:
    """Counts of character 2- to 4-grams within words: spelling, inflection and negation stems that short
    reviews carry in too few words."""
    return CountVectorizer(analyzer="char_wb", ngram_range=(2, 4), min_df=params.min_df, max_features=params.max_features, dtype=np.float32)


class NaiveBayesScaler(TransformerMixin, BaseEstimator):
    """Scales binary n-gram features by their naive Bayes log-count ratio, learned from the training
    labels (Wang and Manning's NB features), so the linear model starts from how much each n-gram leans
    positive or negative. Written here because scikit-learn has no such transformer."""

    def __init__(self, alpha: float = 1.0) -> None:
        self.alpha = alpha

    def fit(self, X, y):  # noqa: N803 (scikit-learn's names)
        """Learn each feature's log-count ratio from the rows of each class."""
        y = np.asarray(y)
        positive = np.asarray(X[y == 1].sum(axis=0)).ravel() + self.alpha
        negative = np.asarray(X[y == 0].sum(axis=0)).ravel() + self.alpha
        self.ratio_ = np.log((positive / positive.sum()) / (negative / negative.sum())).astype(np.float32)
        return self

    def transform(self, X):  # noqa: N803
        """The features, each scaled by its ratio."""
        return sparse.csr_matrix(X.multiply(self.ratio_))


FREQUENCY_SLICE = 1 << 22  # matrix entries whose columns are counted at once: a 32 MB copy at most


class TextColumns(ColumnTransformer):
    """A `ColumnTransformer` that hands a single sparse block on as it is. scikit-learn's stacks even one
    block into a new matrix, a copy as large as the whole TF-IDF matrix (110 MB for 52,000 reviews) at
    the moment a fit needs the most memory; with several blocks it stacks them as scikit-learn does."""

    def _hstack(self, Xs, *, n_samples):  # noqa: N803 (scikit-learn's names; the hook it offers subclasses)
        if self.sparse_output_ and len(Xs) == 1 and sparse.issparse(Xs[0]):
            return Xs[0].tocsr()
        return super()._hstack(Xs, n_samples=n_samples)


class CountsTfidf(TfidfTransformer):
    """TF-IDF that, while fitting, weights the counts it is given in place, where scikit-learn's copies
    them first, and counts document frequencies without a copy. In the pipeline the counts are made for
    it and nothing else holds them."""

    def fit(self, X, y=None):  # noqa: N803
        """scikit-learn's fit, with the document frequencies counted a slice of the matrix at a time:
        `np.bincount` makes a 64-bit copy of the indices it counts, as large as the whole matrix."""
        if not (sparse.issparse(X) and X.format == "csr" and X.dtype in (np.float32, np.float64) and self.use_idf):
            return super().fit(X, y)
        super().fit(X[:1], y)  # validation and the fitted attributes; the frequencies come next
        rows, columns = X.shape
        frequency = np.zeros(columns, dtype=np.int64)
        for at in range(0, X.nnz, FREQUENCY_SLICE):
            frequency += np.bincount(X.indices[at : at + FREQUENCY_SLICE], minlength=columns)
        # then scikit-learn's own arithmetic, step for step, so the weights are the same to the last bit
        frequency = frequency.astype(X.dtype, copy=False)
        frequency += float(self.smooth_idf)
        self.idf_ = np.full_like(frequency, fill_value=rows + int(self.smooth_idf), dtype=X.dtype)
        self.idf_ /= frequency
        np.log(self.idf_, out=self.idf_)
        self.idf_ += 1.0
        return self

    def fit_transform(self, X, y=None):  # noqa: N803
        """Learn the inverse document frequencies and weight `X` itself with them."""
        return self.fit(X).transform(X, copy=False)


def classifier(params: ModelParams) -> LogisticRegression:
    """The linear model every family ends in (it gives the probabilities the gate and the curves use)."""
    return LogisticRegression(C=params.C, max_iter=params.max_iter, random_state=params.seed)


def build_pipeline(params: ModelParams) -> Pipeline:
    """The pipeline of `params.family`, over the `text` column.

    The ColumnTransformer picks the column by name: a bare vectorizer fed a DataFrame iterates over its
    column names and silently predicts a single row.
    """
    tfidf = CountsTfidf(sublinear_tf=True)
    if params.family == "nb-lr":
        steps = [("features", TextColumns([("words", word_counts(params, binary=True), "text")])), ("nb", NaiveBayesScaler())]
    elif params.family == "word-char-lr":
        words = Pipeline([("counts", word_counts(params)), ("tfidf", tfidf)])
        chars = Pipeline([("counts", char_counts(params)), ("tfidf", CountsTfidf(sublinear_tf=True))])
        steps = [("features", TextColumns([("words", words, "text"), ("chars", chars, "text")]))]
    else:
        steps = [("features", TextColumns([("tfidf", Pipeline([("counts", word_counts(params)), ("tfidf", tfidf)]), "text")]))]
    return Pipeline([*steps, ("classifier", classifier(params))])


def holdout_mask(frame: pd.DataFrame, share: float) -> np.ndarray:
    """Which rows of a batch are held out, forever: derived from the batch's rows alone, so every retrain
    agrees, a held-out row is never trained on by any model, and the same data always splits the same
    way (a batch id carries a random part; seeding from it made retrains irreproducible)."""
    rows = pd.util.hash_pandas_object(frame[["text", "label"]].astype({"label": "int64"}), index=False).to_numpy()
    seed = int(hashlib.sha256(rows.tobytes()).hexdigest()[:16], 16)
    return np.random.default_rng(seed).random(len(frame)) < share


@dataclass(frozen=True)
class TrainingData:
    """The rows a challenger learns from and the slices the gate compares models on."""

    train: pd.DataFrame
    holdout_new: pd.DataFrame  # held-out rows of the batches the champion has not learned
    holdout_reference: pd.DataFrame  # held-out rows of the champion's own training batches
    learned_batches: tuple[str, ...]  # every batch whose training rows are in `train`
    new_batches: tuple[str, ...]
    shifted_batches: tuple[str, ...] = ()  # the new batches whose drift caused this retrain
    cause: str = "bootstrap"  # bootstrap | drift | refresh | baseline (a replay policy retraining regardless)
    harmed: bool = False  # a shifted batch cost the champion accuracy (its performance signal fired)

    def new_rows_mask(self) -> np.ndarray:
        """Which training rows come from batches the champion has not learned."""
        return self.train["batch_id"].isin(self.new_batches).to_numpy()

    def shifted_rows_mask(self) -> np.ndarray:
        """Which training rows come from the batches that caused the retrain (the ones cross-fitted)."""
        return self.train["batch_id"].isin(self.shifted_batches).to_numpy()

    def holdout_shifted(self) -> pd.DataFrame:
        """Held-out rows of the batches that caused the retrain: where superiority is judged."""
        return self.holdout_new[self.holdout_new["batch_id"].isin(self.shifted_batches)]

    def holdout_other_new(self) -> pd.DataFrame:
        """Held-out rows of the other new batches: judged for non-inferiority."""
        return self.holdout_new[~self.holdout_new["batch_id"].isin(self.shifted_batches)]


def split(frames: dict[str, pd.DataFrame], share: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Training rows and held-out rows of several batches, each row tagged with its batch (and its
    source, where the batch has one)."""
    train, held = [], []
    for batch_id, frame in frames.items():
        mask = holdout_mask(frame, share)
        columns = ["text", "label", "source"] if "source" in frame.columns else ["text", "label"]
        tagged = frame[columns].assign(batch_id=batch_id)
        train.append(tagged[~mask])
        held.append(tagged[mask])
    empty = pd.DataFrame({"text": pd.Series(dtype=str), "label": pd.Series(dtype="int8"), "batch_id": pd.Series(dtype=str)})
    return (pd.concat(train, ignore_index=True) if train else empty), (pd.concat(held, ignore_index=True) if held else empty)


def cap_newest(train: pd.DataFrame, order: tuple[str, ...], cap: int, seed: int = 0) -> pd.DataFrame:
    """At most `cap` rows, the newest batches' first (0: all): what a model learned long ago gives way
    to what it learned lately, and a retrain's cost stops growing with the stream."""
    if not cap or len(train) <= cap:
        return train
    kept, left = [], cap
    for batch_id in reversed(order):
        rows = train[train["batch_id"] == batch_id]
        if len(rows) > left:
            rows = rows.sample(n=left, random_state=seed)
        kept.append(rows)
        left -= len(rows)
        if not left:
            break
    return pd.concat(kept[::-1], ignore_index=True)


def assemble(
    champion_batches: dict[str, pd.DataFrame],
    new_batches: dict[str, pd.DataFrame],
    share: float,
    reference_cap: int,
    seed: int = 0,
    *,
    shifted: tuple[str, ...] = (),
    max_old_rows: int = 0,
    cause: str = "bootstrap",
    harmed: bool = False,
) -> TrainingData:
    """The training rows and the gate's held-out slices from the champion's and the new batches.
    `shifted`: the new batches whose drift caused the retrain; `max_old_rows`: cap on the champion's rows."""
    old_train, old_held = split(champion_batches, share)
    old_train = cap_newest(old_train, tuple(champion_batches), max_old_rows, seed)
    new_train, new_held = split(new_batches, share)
    if len(old_held) > reference_cap:
        old_held = old_held.sample(n=reference_cap, random_state=seed).reset_index(drop=True)
    return TrainingData(
        train=pd.concat([old_train, new_train], ignore_index=True),
        holdout_new=new_held,
        holdout_reference=old_held,
        learned_batches=tuple(champion_batches) + tuple(new_batches),
        new_batches=tuple(new_batches),
        shifted_batches=tuple(b for b in new_batches if b in shifted) or tuple(new_batches),
        cause=cause,
        harmed=harmed,
    )


@dataclass(frozen=True)
class CrossFit:
    """Out-of-fold predictions on training rows: each row predicted by a model fitted like the challenger
    on every training row but those of its fold."""

    rows: pd.DataFrame  # text, label, batch_id
    y_pred: np.ndarray


def out_of_fold(
    challenger: Pipeline, train: pd.DataFrame, scored: np.ndarray, folds: int, sample_weight: np.ndarray | None = None, seed: int = 0
) -> CrossFit:
    """Cross-fitted predictions for the training rows `scored` selects. They are cut into `folds` folds;
    each is predicted by a model that learned every training row but the fold's, so the rows a retrain
    learns from can also say how well retraining on them works.

    The fold models share the challenger's fitted `features` step (n-gram counts and TF-IDF) and refit
    only what learns from labels (the naive Bayes ratios, the classifier): the features were fitted
    without labels, so sharing them tells a fold model nothing about its fold's labels, and the counting,
    most of a fit's cost, is done once instead of once per fold."""
    features, learner = challenger[:1], challenger[1:]
    x = features.transform(train[["text"]])
    y = train["label"].astype(int).to_numpy()
    picked = np.flatnonzero(scored)
    fold_of = np.random.default_rng(seed).permutation(np.arange(len(picked)) % folds)
    y_pred = np.zeros(len(picked), dtype=int)
    for fold in range(folds):
        left_out = picked[fold_of == fold]
        keep = np.ones(len(train), dtype=bool)
        keep[left_out] = False
        extra = {} if sample_weight is None else {"classifier__sample_weight": sample_weight[keep]}
        y_pred[fold_of == fold] = clone(learner).fit(x[keep], y[keep], **extra).predict(x[left_out])
    return CrossFit(train.iloc[picked][["text", "label", "batch_id"]].reset_index(drop=True), y_pred)


def fit(train: pd.DataFrame, params: ModelParams, sample_weight: np.ndarray | None = None) -> Pipeline:
    """Fit the pipeline of these hyper-parameters on the training rows (optionally weighted per row)."""
    pipeline = build_pipeline(params)
    extra = {} if sample_weight is None else {"classifier__sample_weight": sample_weight}
    pipeline.fit(train[["text"]], train["label"].astype(int), **extra)
    return pipeline


@dataclass(frozen=True)
class Evaluation:
    """A model's predictions on one held-out slice, with the usual metrics."""

    y_true: np.ndarray
    y_pred: np.ndarray
    y_score: np.ndarray

    @property
    def rows(self) -> int:
        """How many rows were scored."""
        return len(self.y_true)

    @property
    def f1(self) -> float:
        """Positive-class F1; nan on no rows."""
        return float(f1_score(self.y_true, self.y_pred, zero_division=0)) if self.rows else float("nan")

    @property
    def accuracy(self) -> float:
        """Accuracy; nan on no rows."""
        return float(accuracy_score(self.y_true, self.y_pred)) if self.rows else float("nan")

    @property
    def roc_auc(self) -> float:
        """ROC AUC; nan unless both classes are present."""
        return float(roc_auc_score(self.y_true, self.y_score)) if len(set(self.y_true)) == 2 else float("nan")

    def metrics(self, prefix: str) -> dict[str, float]:
        """The metrics under a prefix, as logged to MLflow."""
        return {
            f"{prefix}_f1": self.f1,
            f"{prefix}_accuracy": self.accuracy,
            f"{prefix}_roc_auc": self.roc_auc,
            f"{prefix}_rows": float(self.rows),
        }


def evaluate(model: Pipeline, frame: pd.DataFrame) -> Evaluation:
    """A model's predictions and scores on labeled rows."""
    y_true = frame["label"].to_numpy(dtype=int)
    if frame.empty:
        return Evaluation(y_true, y_true.copy(), np.zeros(0))
    scores = predict_in_slices(model.predict_proba, frame[["text"]])[:, 1]
    return Evaluation(y_true, (scores >= 0.5).astype(int), scores)


def concat_batches(frames: Iterable[pd.DataFrame]) -> pd.DataFrame:
    """The text and label columns of several batches, as one frame."""
    return pd.concat([f[["text", "label"]] for f in frames], ignore_index=True)
