"""The model search on real reviews: each family fits, the grid suits the texts, cross-validation scores
every candidate on training rows only, and the best mean is chosen."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import sparse

from sentinel import training, tuning
from sentinel.settings import ModelParams, TunePolicy


@pytest.mark.parametrize("family", ["word-lr", "nb-lr", "word-char-lr"])
def test_every_family_fits_and_gives_probabilities(imdb, rotten, family):
    rows = pd.concat([imdb.iloc[:300], rotten.iloc[:300]], ignore_index=True)
    model = training.fit(rows, ModelParams(family=family))
    probabilities = model.predict_proba(imdb.iloc[5000:5100][["text"]])
    assert probabilities.shape == (100, 2) and np.allclose(probabilities.sum(axis=1), 1)
    assert training.evaluate(model, imdb.iloc[5000:5400]).accuracy > 0.65  # it learned sentiment, not noise


def test_the_naive_bayes_scaler_leans_each_ngram_towards_the_class_that_uses_it():
    counts = sparse.csr_matrix(np.array([[1, 0, 1], [1, 0, 1], [0, 1, 1], [0, 1, 1]], dtype=np.float32))
    scaler = training.NaiveBayesScaler().fit(counts, np.array([1, 1, 0, 0]))
    positive, negative, both = scaler.ratio_
    assert positive > 0 > negative and both == pytest.approx(0)
    assert np.allclose(scaler.transform(counts).toarray()[0], [positive, 0, both])


def test_character_ngrams_join_the_grid_only_for_short_texts(imdb, rotten):
    policy = TunePolicy()
    long_grid = tuning.candidates(ModelParams(), imdb["text"].head(200), policy)
    short_grid = tuning.candidates(ModelParams(), rotten["text"].head(200), policy)
    assert {p.family for p in long_grid} == {"word-lr"} and {p.family for p in short_grid} == {"word-lr", "word-char-lr"}
    # the current configuration comes first, so a tie keeps it, and it is never listed twice
    assert long_grid[0] == ModelParams() and len({(p.family, p.C) for p in long_grid}) == len(long_grid)
    with_nb = tuning.candidates(ModelParams(C=0.5), imdb["text"].head(200), TunePolicy(families=["word-lr", "nb-lr"]))
    assert [tuning.name_of(p) for p in with_nb] == [
        "word-lr C=0.5",
        "word-lr C=4",
        "word-lr C=16",
        "nb-lr C=0.1",
        "nb-lr C=1",
    ]


def test_the_search_scores_every_candidate_on_each_fold_and_chooses_the_best_mean(rotten):
    train = rotten.iloc[:1500]
    found = tuning.search(train, ModelParams(), TunePolicy(search_rows=900, folds=3), "accuracy")
    assert found.rows == 900 and found.folds == 3 and len(found.candidates) == 4
    assert all(len(c.scores) == 3 and 0.5 < c.mean < 1 for c in found.candidates)
    assert found.best.mean == max(c.mean for c in found.candidates)
    assert found.chosen.model_dump() == found.best.params
    # the same rows and seed choose the same way twice
    again = tuning.search(train, ModelParams(), TunePolicy(search_rows=900, folds=3), "accuracy")
    assert [c.scores for c in again.candidates] == [c.scores for c in found.candidates]


def test_the_sample_keeps_each_labels_share(imdb):
    rows = pd.concat([imdb[imdb.label == 1].head(900), imdb[imdb.label == 0].head(300)], ignore_index=True)
    picked = tuning.sample(rows, 400, seed=1)
    assert len(picked) == 400 and picked["label"].mean() == pytest.approx(0.75, abs=0.01)
    assert len(tuning.sample(rows.head(100), 400, seed=1)) == 100
