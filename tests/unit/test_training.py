"""Training data assembly and the model pipeline, on real reviews."""

from __future__ import annotations

import numpy as np
import pandas as pd

from sentinel import training
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


def test_model_learns_sentiment(imdb):
    model = training.fit(imdb.iloc[:3000], ModelParams())
    evaluation = training.evaluate(model, imdb.iloc[3000:4000])
    assert evaluation.accuracy > 0.8 and evaluation.roc_auc > 0.9
    # minimum functionality: unmistakable reviews
    obvious = pd.DataFrame({"text": ["An awful, boring, terrible waste of time.", "A wonderful, brilliant and moving film. Loved it."]})
    assert model.predict(obvious).tolist() == [0, 1]
