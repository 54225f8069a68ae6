"""The pruned word counts learn exactly what scikit-learn's CountVectorizer learns, on real reviews."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from sklearn.feature_extraction.text import CountVectorizer

from sentinel import demo, vocabulary
from sentinel.vocabulary import PrunedCountVectorizer

SETTINGS = [
    # the word features of the nb-lr family: binary, the vocabulary cut by max_features
    {"ngram_range": (1, 2), "min_df": 2, "max_features": 20_000, "binary": True, "dtype": np.float32},
    # counts, no cap, document frequency bounds given as shares
    {"ngram_range": (1, 2), "min_df": 0.001, "max_df": 0.5},
    # the default ModelParams on a corpus the cap does not reach
    {"ngram_range": (1, 2), "min_df": 2, "max_features": 200_000, "dtype": np.float32},
]


@pytest.fixture(scope="module")
def reviews() -> tuple[list[str], list[str]]:
    texts = demo.reviews("imdb")["text"].tolist()
    return texts[:2000], texts[2000:2200]


@pytest.mark.parametrize("params", SETTINGS, ids=["binary-capped", "shares", "defaults"])
def test_the_same_vocabulary_and_counts_as_scikit_learn(reviews, params, monkeypatch):
    monkeypatch.setattr(vocabulary, "CHUNK_DOCUMENTS", 700)  # three chunks, the last one short
    fitting, unseen = reviews
    ours, theirs = PrunedCountVectorizer(**params), CountVectorizer(**params)
    ours_matrix, theirs_matrix = ours.fit_transform(fitting), theirs.fit_transform(fitting)
    assert ours.vocabulary_ == theirs.vocabulary_
    assert ours_matrix.dtype == theirs_matrix.dtype and ours_matrix.shape == theirs_matrix.shape
    # the same arrays, not just the same matrix: the order of the nonzeros within a row decides how
    # the solver's sums round, so a different layout would fit a (slightly) different model
    for name in ("data", "indices", "indptr"):
        assert np.array_equal(getattr(ours_matrix, name), getattr(theirs_matrix, name)), name
    assert_same_arrays(ours.transform(unseen), theirs.transform(unseen))
    assert list(ours.get_feature_names_out()) == list(theirs.get_feature_names_out())
    again = pickle.loads(pickle.dumps(ours))
    assert "_term_lookup" in ours.__dict__ and "_term_lookup" not in again.__dict__  # made again, never stored
    assert_same_arrays(again.transform(unseen), theirs.transform(unseen))


def assert_same_arrays(ours, theirs) -> None:
    assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
    for name in ("data", "indices", "indptr"):
        assert np.array_equal(getattr(ours, name), getattr(theirs, name)), name


@pytest.mark.parametrize(
    "params",
    [{"ngram_range": (1, 2), "min_df": 2, "dtype": np.float32}, {"ngram_range": (2, 3), "min_df": 2, "binary": True}],
    ids=["uni-bigrams", "bi-trigrams-binary"],
)
def test_counting_by_token_ids_gives_scikit_learns_matrix(reviews, params):
    """`transform` by token ids: the same arrays as scikit-learn's on reviews of another site, on
    empty texts, texts of one token and texts of words the vocabulary never saw, and row after row."""
    fitting, _ = reviews
    rotten = demo.reviews("rotten_tomatoes")["text"].tolist()[:300]
    odd = ["", "   ", "ok", "zzzqx yyyqx", "Great great GREAT film, a great film!", "film"]
    ours, theirs = PrunedCountVectorizer(**params).fit(fitting), CountVectorizer(**params).fit(fitting)
    for documents in (rotten, odd, odd + rotten[:5] + odd, odd[:1]):
        assert_same_arrays(ours.transform(documents), theirs.transform(documents))
    assert ours.transform([]).shape == (0, len(ours.vocabulary_))


def test_the_cap_keeps_the_same_terms_when_frequencies_tie():
    # Thirty terms, in ten groups of three with the same count: the cap of 10 cuts through a tie.
    documents = [" ".join(f"w{i:02d}" for i in range(30) if i // 3 >= k) for k in range(10)]
    ours = PrunedCountVectorizer(max_features=10).fit(documents)
    assert ours.vocabulary_ == CountVectorizer(max_features=10).fit(documents).vocabulary_


def test_nothing_left_after_pruning_is_scikit_learns_error():
    with pytest.raises(ValueError, match="no terms remain"):
        PrunedCountVectorizer(min_df=2).fit(["one review", "another text"])
    with pytest.raises(ValueError, match="max_df corresponds to < documents than min_df"):
        PrunedCountVectorizer(min_df=3, max_df=2).fit(["a b", "a c", "a d"])
