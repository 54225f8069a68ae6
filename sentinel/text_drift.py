"""The text signal: Evidently's absolute text content drift, with each text's words counted once per process.

Evidently scores text drift with a domain classifier: it splits reference and batch in halves, fits a
TF-IDF vectoriser and an SGD classifier on one half and reports the ROC AUC on the other. Most of that
time is the vectoriser splitting every text into words and counting them, the reference's 5,000 texts
again for every batch and for each of the ten calibration draws of a new reference, where the reference
rarely changes. Evidently takes no counts from outside, so this module registers the same statistic as an
Evidently stat test (`METHOD`) that reads each text's word counts from a per-process cache and builds the
vectoriser's count matrix from them with numpy: the same vocabulary (`max_df=0.5`, sorted by word), the
same counts in the same order, then scikit-learn's own TF-IDF transform and SGD classifier. It is
Evidently's pipeline, split and seed unchanged, so the score equals Evidently's own
`abs_text_content_drift` to the last bit (tests/unit/test_text_drift.py compares them on real reviews).
Evidently's report, widgets and snapshot are built around it as before.
"""

from __future__ import annotations

import sys
import threading
from collections import OrderedDict
from collections.abc import Iterable

import numpy as np
import pandas as pd

METHOD = "sentinel_text_content_drift"  # the name `ValueDrift(method=...)` finds the stat test by
CACHED_TEXTS = 12_000  # a 5,000-row reference and the 6,000-row pool its calibration draws from: about 20 MB of IMDB counts
MAX_WORDS = 1_000_000  # a long-lived process starts its word list and cache afresh past this many words (about 100 MB)

Counts = tuple[np.ndarray, np.ndarray]  # a text's distinct word ids, ascending, and how often each occurs


class WordCounts:
    """Each text's words as Evidently's vectoriser splits them (lower case, English stop words dropped),
    counted once: the ids of its distinct words in this process's word list, and their counts, for the
    texts seen most recently."""

    def __init__(self, capacity: int = CACHED_TEXTS, max_words: int = MAX_WORDS) -> None:
        from sklearn.feature_extraction.text import TfidfVectorizer

        self.capacity = capacity
        self.max_words = max_words
        self._split = TfidfVectorizer(stop_words="english").build_analyzer()
        self._counts: OrderedDict[str, Counts] = OrderedDict()
        self._ids: dict[str, int] = {}
        self.words: list[str] = []  # replaced, never cleared in place: a caller's copy stays whole
        self._lock = threading.Lock()  # a check may run in a flow's thread beside another

    def of(self, *groups: Iterable[str]) -> tuple[list[list[Counts]], list[str]]:
        """The counts of every text of each group, and the word list their ids index. Taken under one
        lock, so the ids of all groups belong to the same word list."""
        groups = [list(group) for group in groups]
        with self._lock:
            missing = {text for group in groups for text in group if text not in self._counts}
        # Splitting is the slow part and needs no lock; sys.intern stores each word once.
        split = {text: [sys.intern(word) for word in self._split(text)] for text in missing}
        with self._lock:
            if len(self.words) > self.max_words:
                self._counts, self._ids, self.words = OrderedDict(), {}, []
            counts = []
            for group in groups:
                counts.append([self._counts_of(text, split) for text in group])
            while len(self._counts) > self.capacity:
                self._counts.popitem(last=False)
            return counts, self.words

    def _counts_of(self, text: str, split: dict[str, list[str]]) -> Counts:
        counts = self._counts.get(text)
        if counts is None:
            # Split above, or (rarely) dropped by another thread since: split again under the lock.
            words = split[text] if text in split else [sys.intern(word) for word in self._split(text)]
            counts = self._counts[text] = self._count(words)
        else:
            self._counts.move_to_end(text)
        return counts

    def _count(self, words: list[str]) -> Counts:
        ids = self._ids
        for word in words:
            if word not in ids:
                ids[word] = len(self.words)
                self.words.append(word)
        distinct, counts = np.unique(np.fromiter((ids[word] for word in words), dtype=np.int32, count=len(words)), return_counts=True)
        return distinct, counts.astype(np.int32)

    def __len__(self) -> int:
        return len(self._counts)


_cache: WordCounts | None = None


def word_counts() -> WordCounts:
    """This process's cache, made on first use."""
    global _cache
    if _cache is None:
        _cache = WordCounts()
    return _cache


def _all_ids(counts: list[Counts]) -> np.ndarray:
    """The word ids of these texts, one after the other."""
    return np.concatenate([ids for ids, _ in counts]) if counts else np.zeros(0, dtype=np.int64)


def _count_matrix(counts: list[Counts], column_of: np.ndarray, columns: int):
    """The vectoriser's count matrix of these texts: a row per text, the words `column_of` maps to a
    column (-1: not in the vocabulary) with their counts, float64 and indices sorted as scikit-learn's."""
    from scipy import sparse

    lengths = np.fromiter((len(ids) for ids, _ in counts), dtype=np.int64, count=len(counts))
    ids = _all_ids(counts)
    values = np.concatenate([n for _, n in counts]) if counts else np.zeros(0, dtype=np.int64)
    column = column_of[ids] if ids.size else ids
    known = column >= 0
    rows = np.repeat(np.arange(len(counts)), lengths)[known]
    indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=len(counts)))])
    matrix = sparse.csr_matrix((values[known].astype(np.float64), column[known], indptr), shape=(len(counts), columns))
    matrix.sort_indices()
    return matrix


def _vocabulary(counts: list[Counts], words: list[str], max_df: float = 0.5) -> tuple[np.ndarray, int]:
    """`TfidfVectorizer(max_df=0.5).fit`'s vocabulary of these texts, as a map from word id to column:
    the words in at most half the texts, numbered in the order of the words themselves. Raises
    scikit-learn's own errors for texts with no words left."""
    ids = _all_ids(counts)
    if ids.size == 0:
        raise ValueError("empty vocabulary; perhaps the documents only contain stop words")
    if max_df * len(counts) < 1:
        raise ValueError("max_df corresponds to < documents than min_df")
    in_texts = np.bincount(ids, minlength=len(words))  # a text holds each of its ids once
    kept = np.flatnonzero((in_texts >= 1) & (in_texts <= max_df * len(counts)))
    if kept.size == 0:
        raise ValueError("After pruning, no terms remain. Try a lower min_df or a higher max_df.")
    kept_words = [words[i] for i in kept.tolist()]
    by_word = sorted(range(kept.size), key=kept_words.__getitem__)
    column_of = np.full(len(words), -1, dtype=np.int64)
    column_of[kept[by_word]] = np.arange(kept.size)
    return column_of, kept.size


def domain_classifier_auc(reference: pd.Series, current: pd.Series, cache: WordCounts | None = None) -> float:
    """Evidently's `calculate_text_drift_score(reference, current, bootstrap=False)`: the same split,
    vectoriser, classifier and seed, with the texts' word counts read from `cache` (this process's by
    default)."""
    from sklearn.feature_extraction.text import TfidfTransformer
    from sklearn.linear_model import SGDClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import train_test_split

    domain = pd.concat([pd.DataFrame({"text": reference, "target": 0}), pd.DataFrame({"text": current, "target": 1})])
    x_train, x_test, y_train, y_test = train_test_split(domain["text"], domain["target"], test_size=0.5, random_state=42, shuffle=True)
    (train, test), words = (word_counts() if cache is None else cache).of(x_train, x_test)
    column_of, columns = _vocabulary(train, words)
    # Evidently's vectoriser is TfidfVectorizer(sublinear_tf=True, max_df=0.5, stop_words="english"):
    # its count step, as above, then its TF-IDF step, which is this transformer.
    tfidf = TfidfTransformer(sublinear_tf=True)
    features = tfidf.fit_transform(_count_matrix(train, column_of, columns))
    classifier = SGDClassifier(alpha=0.0001, max_iter=50, penalty="l1", loss="modified_huber", random_state=42)
    classifier.fit(features, y_train)
    scores = classifier.predict_proba(tfidf.transform(_count_matrix(test, column_of, columns)))[:, 1]
    return float(roc_auc_score(y_test, scores))


def _stat_test(reference: pd.Series, current: pd.Series, feature_type, threshold: float) -> tuple[float, bool]:
    score = domain_classifier_auc(reference, current)
    return score, score > threshold


_registered = False


def register() -> None:
    """Make `METHOD` known to Evidently (once per process), with the threshold of Evidently's own."""
    global _registered
    from evidently.legacy.calculations.stattests.registry import StatTest, register_stattest
    from evidently.legacy.core import ColumnType

    if _registered:
        return
    stat_test = StatTest(
        name=METHOD,
        display_name="Absolute text content drift (domain classifier ROC AUC)",
        allowed_feature_types=[ColumnType.Text],
        default_threshold=0.55,
    )
    register_stattest(stat_test, _stat_test)
    _registered = True
