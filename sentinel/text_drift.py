"""The text signal: Evidently's absolute text content drift, with each text tokenised once per process.

Evidently scores text drift with a domain classifier: it splits reference and batch in halves, fits a
TF-IDF vectoriser and an SGD classifier on one half and reports the ROC AUC on the other. About 85 % of
that time is the vectoriser splitting every text into words, the reference's 5,000 texts again for every
batch and for each of the ten calibration draws of a new reference, where the reference rarely changes.
Evidently takes no tokens from outside, so this module registers the same statistic as an Evidently
stat test (`METHOD`) whose vectoriser reads each text's tokens from a per-process cache. It is Evidently's
pipeline, split and seed unchanged: the vocabulary, the matrix, the classifier and so the score equal
Evidently's own `abs_text_content_drift` to the last bit (tests/unit/test_text_drift.py compares them on
real reviews). Evidently's report, widgets and snapshot are built around it as before.
"""

from __future__ import annotations

import sys
import threading
from collections import OrderedDict

import pandas as pd

METHOD = "sentinel_text_content_drift"  # the name `ValueDrift(method=...)` finds the stat test by
CACHED_TEXTS = 12_000  # a 5,000-row reference and the 6,000-row pool its calibration draws from: 18 MB of IMDB words


class TokenCache:
    """The words of each text, as Evidently's vectoriser splits them (lower case, English stop words
    dropped), for the texts seen most recently."""

    def __init__(self, capacity: int = CACHED_TEXTS) -> None:
        from sklearn.feature_extraction.text import TfidfVectorizer

        self.capacity = capacity
        self._split = TfidfVectorizer(stop_words="english").build_analyzer()
        self._tokens: OrderedDict[str, tuple[str, ...]] = OrderedDict()
        self._lock = threading.Lock()  # a check may run in a flow's thread beside another

    def __call__(self, text: str) -> tuple[str, ...]:
        """The words of `text`, split once and then read from the cache."""
        with self._lock:
            tokens = self._tokens.get(text)
            if tokens is not None:
                self._tokens.move_to_end(text)
                return tokens
        # Interned: a word is stored once however many texts hold it.
        tokens = tuple(sys.intern(word) for word in self._split(text))
        with self._lock:
            self._tokens[text] = tokens
            if len(self._tokens) > self.capacity:
                self._tokens.popitem(last=False)
        return tokens

    def __len__(self) -> int:
        return len(self._tokens)


_cache: TokenCache | None = None


def tokens() -> TokenCache:
    """This process's cache, made on first use."""
    global _cache
    if _cache is None:
        _cache = TokenCache()
    return _cache


def domain_classifier_auc(reference: pd.Series, current: pd.Series, analyzer=None) -> float:
    """Evidently's `calculate_text_drift_score(reference, current, bootstrap=False)`: the same split,
    pipeline and seed, with the texts' words read from `analyzer` (the cache by default)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import SGDClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import Pipeline

    domain = pd.concat([pd.DataFrame({"text": reference, "target": 0}), pd.DataFrame({"text": current, "target": 1})])
    x_train, x_test, y_train, y_test = train_test_split(domain["text"], domain["target"], test_size=0.5, random_state=42, shuffle=True)
    # Evidently's vectoriser is TfidfVectorizer(sublinear_tf=True, max_df=0.5, stop_words="english"); a
    # callable analyzer replaces its splitting and stop words, which the cache applies the same way.
    pipeline = Pipeline(
        [
            ("vectorization", TfidfVectorizer(analyzer=tokens() if analyzer is None else analyzer, sublinear_tf=True, max_df=0.5)),
            ("classification", SGDClassifier(alpha=0.0001, max_iter=50, penalty="l1", loss="modified_huber", random_state=42)),
        ]
    )
    pipeline.fit(x_train, y_train)
    return float(roc_auc_score(y_test, pipeline.predict_proba(x_test)[:, 1]))


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
