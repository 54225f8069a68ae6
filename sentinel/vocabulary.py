"""A CountVectorizer that learns the same vocabulary as scikit-learn's with less than half its memory.

scikit-learn's `CountVectorizer.fit` puts every n-gram of the corpus into one dictionary before it
prunes by `min_df` and `max_features`. Word 1-2-grams of 25,000 reviews are about 2.5 million entries,
most of them seen in one review and pruned at the end: the fit peaks about 525 MB above its input, and
that decided the peak memory of `sentinel up` during a retrain. scikit-learn has no way to prune while
counting, so `PrunedCountVectorizer.fit_transform` counts in two passes over the documents:

1. the document frequency of every n-gram, kept as NumPy arrays of the n-grams' hashes and counts
   (16 bytes an n-gram, where the dictionary holds a string object and an entry), reduced chunk by chunk;
2. the counts of only the n-grams frequent enough, and each one's text.

Then it numbers the columns by term and prunes as `CountVectorizer` does (`min_df`, `max_df`, then the
`max_features` most frequent, ties broken by the same sort). The vocabulary and the matrix, down to the
order of the nonzeros in each row, equal scikit-learn's (tests/unit/test_vocabulary.py compares them on
real reviews), so the fitted model is the same to the last bit;
`transform`, `get_feature_names_out` and pickling are `CountVectorizer`'s own. Two n-grams whose 64-bit
hashes collide would share a column: about one chance in ten million for 2.5 million n-grams.
"""

from __future__ import annotations

from numbers import Integral

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import CountVectorizer

CHUNK_DOCUMENTS = 2_000  # documents whose n-gram hashes are reduced together: bounds pass 1's arrays


class PrunedCountVectorizer(CountVectorizer):
    """`CountVectorizer` whose fit never holds the n-grams that pruning removes."""

    def fit_transform(self, raw_documents, y=None):
        """Learn the vocabulary (the same as `CountVectorizer`'s) and return the document-term matrix."""
        if self.vocabulary is not None or isinstance(raw_documents, str):
            return super().fit_transform(raw_documents, y)  # nothing to prune, or scikit-learn's own error
        documents = list(raw_documents)
        low, high = self._document_count_bounds(len(documents))
        analyze = self.build_analyzer()
        frequent = _frequent_hashes(documents, analyze, low, high)
        if len(frequent) == 0:
            raise ValueError("After pruning, no terms remain. Try a lower min_df or a higher max_df.")
        matrix, terms = self._count(documents, analyze, frequent)
        kept = self._surviving_columns(matrix)
        if len(kept) < len(terms):  # the cap removes columns; otherwise the matrix is already the answer
            matrix, terms = matrix[:, kept], terms[kept]
        self.vocabulary_ = {term: index for index, term in enumerate(terms)}
        self.fixed_vocabulary_ = False
        return matrix

    def _document_count_bounds(self, documents: int) -> tuple[float, float]:
        """`min_df` and `max_df` as document counts, as scikit-learn reads them."""
        low = self.min_df if isinstance(self.min_df, Integral) else self.min_df * documents
        high = self.max_df if isinstance(self.max_df, Integral) else self.max_df * documents
        if high < low:
            raise ValueError("max_df corresponds to < documents than min_df")
        return low, high

    def _count(self, documents: list, analyze, frequent: np.ndarray) -> tuple[sparse.csr_matrix, np.ndarray]:
        """Pass 2: the document-term matrix over the frequent n-grams, its columns numbered by term, and
        the terms in that order."""
        terms = np.empty(len(frequent), dtype=object)
        seen = np.full(len(frequent), -1, dtype=np.int64)  # the order in which the corpus first uses each n-gram
        used = 0
        indptr, indices, values = [0], [], []
        for doc in documents:
            grams = analyze(doc)
            hashes = np.fromiter(map(hash, grams), dtype=np.int64, count=len(grams))
            where = np.minimum(np.searchsorted(frequent, hashes), len(frequent) - 1)
            hits = np.flatnonzero(frequent[where] == hashes)
            columns, first, counts = np.unique(where[hits], return_index=True, return_counts=True)
            new = np.flatnonzero(seen[columns] < 0)
            new = new[np.argsort(first[new])]  # in the order this document uses them
            for column, position in zip(columns[new], hits[first[new]]):
                terms[column] = grams[position]
            seen[columns[new]] = np.arange(used, used + len(new))
            used += len(new)
            # Within a row, scikit-learn's fitted matrix lists n-grams in the order the corpus first used
            # them (it numbers them so while counting, then renumbers the columns by term without
            # re-sorting the rows). The same layout makes the solver's sums, and so the model, identical.
            layout = np.argsort(seen[columns])
            indices.append(columns[layout].astype(np.int32))
            values.append(counts[layout].astype(np.int32))
            indptr.append(indptr[-1] + len(columns))
        order = np.argsort(terms, kind="stable")  # columns by term, as CountVectorizer numbers them
        new_position = np.empty(len(order), dtype=np.int32)
        new_position[order] = np.arange(len(order), dtype=np.int32)
        matrix = sparse.csr_matrix(
            (np.concatenate(values).astype(self.dtype), new_position[np.concatenate(indices)], np.asarray(indptr)),
            shape=(len(documents), len(frequent)),
        )
        if self.binary:
            matrix.data.fill(1)
        return matrix, terms[order]

    def _surviving_columns(self, matrix: sparse.csr_matrix) -> np.ndarray:
        """The columns `CountVectorizer` keeps after the document-frequency bounds (already applied to
        these columns): at most `max_features`, the most frequent, ties broken by the same sort."""
        columns = np.arange(matrix.shape[1])
        if self.max_features is None or len(columns) <= self.max_features:
            return columns
        totals = np.asarray(matrix.sum(axis=0)).ravel()
        return np.sort(columns[(-totals).argsort()[: self.max_features]])


def _frequent_hashes(documents: list, analyze, low: float, high: float) -> np.ndarray:
    """Pass 1: the sorted hashes of the n-grams in at least `low` and at most `high` documents."""
    hashes, counts = np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    for start in range(0, len(documents), CHUNK_DOCUMENTS):
        chunk = [np.fromiter(set(map(hash, analyze(doc))), dtype=np.int64) for doc in documents[start : start + CHUNK_DOCUMENTS]]
        unique, frequency = np.unique(np.concatenate([hashes[:0], *chunk]), return_counts=True)
        hashes, counts = _merge_counts(hashes, counts, unique, frequency)
    return hashes[(counts >= low) & (counts <= high)]


def _merge_counts(hashes: np.ndarray, counts: np.ndarray, more: np.ndarray, more_counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two sorted runs of (hash, count) as one, the counts of a hash in both added. A stable sort of
    two sorted runs is a merge (linear), where `np.unique` would sort the whole again."""
    merged = np.concatenate([hashes, more])
    order = np.argsort(merged, kind="stable")
    merged, weights = merged[order], np.concatenate([counts, more_counts])[order]
    starts = np.flatnonzero(np.concatenate([[True], merged[1:] != merged[:-1]]))
    return merged[starts], np.add.reduceat(weights, starts)
