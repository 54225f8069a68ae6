"""Training data assembly and the model pipeline, on real reviews."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction.text import TfidfTransformer
from sklearn.pipeline import Pipeline

from sentinel import row_slices, training
from sentinel.settings import ModelParams


def test_holdout_is_fixed_by_the_rows_alone(imdb):
    batch = imdb.iloc[:10_000]
    a = training.holdout_mask(batch, 0.2)
    # the same rows split the same way wherever they come from: a parquet round trip keeps int8 labels
    assert np.array_equal(a, training.holdout_mask(batch.astype({"label": "int8"}).reset_index(drop=True), 0.2))
    assert not np.array_equal(a, training.holdout_mask(imdb.iloc[10_000:20_000], 0.2))
    assert abs(a.mean() - 0.2) < 0.02


def test_assemble_never_trains_on_held_out_rows(imdb):
    old = {"ref": imdb.iloc[:1000]}
    new = {"b1": imdb.iloc[1000:1500], "b2": imdb.iloc[1500:2000]}
    data = training.assemble(old, new, share=0.2, reference_cap=150)
    assert set(data.train["text"]).isdisjoint(data.holdout_new["text"])
    assert set(data.train["text"]).isdisjoint(data.holdout_reference["text"])
    assert set(data.holdout_new["batch_id"]) == {"b1", "b2"}
    assert len(data.holdout_reference) == 150
    assert data.learned_batches == ("ref", "b1", "b2") and data.new_batches == ("b1", "b2")
    held_reference = int(training.holdout_mask(imdb.iloc[:1000], 0.2).sum())
    assert len(data.train) + len(data.holdout_new) + held_reference == 2000  # every row is somewhere, once


def test_pipeline_predicts_one_label_per_row_of_a_dataframe(imdb):
    # A bare TfidfVectorizer fed a DataFrame iterates over column names and predicts one row.
    model = training.fit(imdb.iloc[:600], ModelParams(max_features=5000))
    frame = imdb.iloc[600:700][["text"]]
    assert len(model.predict(frame)) == 100


@pytest.mark.parametrize("family", ["word-lr", "nb-lr", "word-char-lr"])
def test_the_lean_pipeline_fits_scikit_learns_model_to_the_last_bit(imdb, family, monkeypatch):
    # TextColumns passes one block on without stacking a copy, CountsTfidf counts document frequencies
    # in slices and weights the counts in place: the features, and so the model, must be
    # scikit-learn's own, bit for bit
    monkeypatch.setattr(training, "FREQUENCY_SLICE", 10_000)  # the document frequencies in many slices
    params = ModelParams(family=family, max_features=20_000)
    ours, theirs = training.build_pipeline(params), training.build_pipeline(params)
    theirs.steps[0] = ("features", ColumnTransformer(theirs.named_steps["features"].transformers))
    for _, words_or_chars, _ in theirs.named_steps["features"].transformers:
        if isinstance(words_or_chars, Pipeline):
            words_or_chars.steps[1] = ("tfidf", TfidfTransformer(sublinear_tf=True))
    assert type(ours[0]) is training.TextColumns and type(theirs[0]) is ColumnTransformer
    rows, unseen = imdb.iloc[:1500], imdb.iloc[1500:1700][["text"]]
    ours_x, theirs_x = clone(ours[0]).fit_transform(rows[["text"]]), theirs[0].fit_transform(rows[["text"]])
    for name in ("data", "indices", "indptr"):
        assert np.array_equal(getattr(ours_x, name), getattr(theirs_x, name)), name
    ours.fit(rows[["text"]], rows["label"])
    theirs.fit(rows[["text"]], rows["label"])
    assert np.array_equal(ours[-1].coef_, theirs[-1].coef_)
    assert np.array_equal(ours.predict_proba(unseen), theirs.predict_proba(unseen))


def test_predictions_in_slices_are_the_whole_frames_to_the_last_bit(imdb, monkeypatch):
    # character n-grams are the costly case: scikit-learn's transform holds every entry as a Python int
    model = training.fit(imdb.iloc[:800], ModelParams(family="word-char-lr", max_features=20_000))
    frame = imdb.iloc[800:1500]
    whole = model.predict_proba(frame[["text"]])
    monkeypatch.setattr(row_slices, "SLICE_ROWS", 300)  # three slices, the last one short
    assert np.array_equal(row_slices.predict_in_slices(model.predict_proba, frame[["text"]]), whole)
    assert np.array_equal(training.evaluate(model, frame).y_score, whole[:, 1])


def test_model_learns_sentiment(imdb):
    model = training.fit(imdb.iloc[:3000], ModelParams())
    evaluation = training.evaluate(model, imdb.iloc[3000:4000])
    assert evaluation.accuracy > 0.8 and evaluation.roc_auc > 0.9
    # minimum functionality: unmistakable reviews
    obvious = pd.DataFrame({"text": ["An awful, boring, terrible waste of time.", "A wonderful, brilliant and moving film. Loved it."]})
    assert model.predict(obvious).tolist() == [0, 1]


def test_the_slices_follow_the_batches_that_caused_the_retrain(imdb):
    new = {"b1": imdb.iloc[1000:1500], "b2": imdb.iloc[1500:2000]}
    data = training.assemble({"ref": imdb.iloc[:1000]}, new, share=0.2, reference_cap=500, shifted=("b2",))
    assert data.shifted_batches == ("b2",)
    assert set(data.holdout_shifted()["batch_id"]) == {"b2"} and set(data.holdout_other_new()["batch_id"]) == {"b1"}
    assert data.new_rows_mask().sum() == (data.train["batch_id"] != "ref").sum()
    # a retrain no drift caused (a refresh, a baseline of replay) judges superiority on every new row
    everything = training.assemble({"ref": imdb.iloc[:1000]}, new, share=0.2, reference_cap=500)
    assert everything.shifted_batches == ("b1", "b2") and everything.holdout_other_new().empty


def test_old_rows_are_capped_newest_batches_first(imdb):
    old = {"a": imdb.iloc[:1000], "b": imdb.iloc[1000:2000], "c": imdb.iloc[2000:3000]}
    data = training.assemble(old, {"n": imdb.iloc[3000:3500]}, share=0.2, reference_cap=100, max_old_rows=1200)
    kept = data.train[data.train["batch_id"] != "n"]["batch_id"].value_counts()
    assert len(data.train[data.train["batch_id"] != "n"]) == 1200
    assert "a" not in kept and kept["c"] > 700  # the oldest batch gives way first
    assert (data.train["batch_id"] == "n").sum() > 350  # new rows are never capped


def test_sample_weights_reach_the_classifier(imdb):
    rows = imdb.iloc[:800]
    plain = training.fit(rows, ModelParams(max_features=3000))
    weighted = training.fit(rows, ModelParams(max_features=3000), np.where(np.arange(800) < 400, 5.0, 1.0))
    assert not np.allclose(plain[-1].coef_, weighted[-1].coef_)


def test_out_of_fold_predictions_come_from_models_that_never_learned_the_row(imdb, monkeypatch):
    from sklearn.linear_model import LogisticRegression

    data = training.assemble({"ref": imdb.iloc[:1000]}, {"new": imdb.iloc[1000:1300]}, share=0.2, reference_cap=100, shifted=("new",))
    scored = (data.train["batch_id"] == "new").to_numpy()
    challenger = training.fit(data.train, ModelParams(family="nb-lr", max_features=3000))
    # Each row's weight is its number, so the weights a fold's classifier gets say which rows it learned.
    row_numbers = np.arange(len(data.train), dtype=float)
    learned: list[set[int]] = []
    fit = LogisticRegression.fit

    def recording_fit(self, x, y, sample_weight=None):
        learned.append(set(sample_weight.astype(int)))
        return fit(self, x, y)

    monkeypatch.setattr(LogisticRegression, "fit", recording_fit)
    cross = training.out_of_fold(challenger, data.train, scored, 3, sample_weight=row_numbers)
    assert len(learned) == 3 and len(cross.y_pred) == scored.sum()
    assert list(cross.rows["text"]) == list(data.train["text"][scored])
    for row in np.flatnonzero(scored):  # exactly one fold model did not learn the row: the one that predicted it
        assert sum(row not in rows for rows in learned) == 1
    assert all(set(np.flatnonzero(~scored)) <= rows for rows in learned)  # every fold model learned every other row
    assert np.mean(cross.y_pred == cross.rows["label"].to_numpy()) > 0.7  # real predictions, not a constant


def test_cross_fitted_rows_join_the_shifted_slice_and_their_batch_label_check(imdb):
    from sentinel.retraining import gate_slices

    new = {"b1": imdb.iloc[1000:1200], "b2": imdb.iloc[1200:1400]}
    data = training.assemble({"ref": imdb.iloc[:1000]}, new, share=0.2, reference_cap=100, shifted=("b2",))

    def guess(frame):  # an Evaluation that predicts every label right
        y = frame["label"].to_numpy(dtype=int)
        return training.Evaluation(y, y.copy(), y.astype(float))

    held, reference = guess(data.holdout_new), guess(data.holdout_reference)
    scored = (data.train["batch_id"] == "b2").to_numpy()
    rows = data.train[scored][["text", "label", "batch_id"]].reset_index(drop=True)
    cross = training.CrossFit(rows, 1 - rows["label"].to_numpy(dtype=int))  # every out-of-fold guess wrong
    plain = gate_slices(data, held, held, reference, reference)
    crossed = gate_slices(data, held, held, reference, reference, (cross, guess(rows)))
    assert crossed.cross_fitted == len(rows) and plain.cross_fitted == 0
    assert crossed.shifted.rows == plain.shifted.rows + len(rows)
    assert crossed.per_batch["b2"].rows == plain.per_batch["b2"].rows + len(rows)
    assert crossed.per_batch["b1"].rows == plain.per_batch["b1"].rows
    assert crossed.other_new.rows == plain.other_new.rows  # the non-inferiority slices keep to held-out rows
    # the challenger's out-of-fold misses count against it on the shifted rows
    assert np.mean(crossed.shifted.challenger == crossed.shifted.y_true) < np.mean(plain.shifted.challenger == plain.shifted.y_true)
