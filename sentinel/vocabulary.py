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
real reviews), so the fitted model is the same to the last bit. `transform` counts by token ids
(`sentinel.term_lookup`: the same matrix in less time); `get_feature_names_out` and pickling
are `CountVectorizer`'s own. Two n-grams whose 64-bit hashes collide would share a column: about one
chance in ten million for 2.5 million n-grams.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass
from numbers import Integral

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import CountVectorizer

from sentinel.term_lookup import TermLookup

CHUNK_DOCUMENTS = 2_000  # documents whose n-gram hashes are reduced together: bounds pass 1's arrays
TEXTS_AT_ONCE = 1 << 16  # n-gram texts made together from their offsets (each offset a Python int meanwhile)


class PrunedCountVectorizer(CountVectorizer):
    """`CountVectorizer` whose fit never holds the n-grams that pruning removes."""

    def fit_transform(self, raw_documents, y=None):
        """Learn the vocabulary (the same as `CountVectorizer`'s) and return the document-term matrix."""
        if self.vocabulary is not None or isinstance(raw_documents, str):
            return super().fit_transform(raw_documents, y)  # nothing to prune, or scikit-learn's own error
        documents = list(raw_documents)
        low, high = self._document_count_bounds(len(documents))
        analyze = self.build_analyzer()
        frequent, entries = _frequent_hashes(documents, analyze, low, high)
        if len(frequent) == 0:
            raise ValueError("After pruning, no terms remain. Try a lower min_df or a higher max_df.")
        counted = _count(documents, analyze, frequent, entries, self.binary)
        by_term = counted.by_term()  # columns by term, as CountVectorizer numbers them
        kept = by_term[self._surviving_columns(counted.totals[by_term].astype(_sum_dtype(self.dtype)))]
        terms = counted.texts(kept)
        column = np.full(len(frequent), -1, dtype=np.int32)  # each frequent n-gram's column; -1: cut
        column[kept] = np.arange(len(kept), dtype=np.int32)
        matrix = counted.matrix(column, len(kept), self.dtype, self.binary)
        self.vocabulary_ = {term: index for index, term in enumerate(terms)}
        self.fixed_vocabulary_ = False
        return matrix

    def transform(self, raw_documents):
        """The document-term matrix over the fitted vocabulary: scikit-learn's, counted by token ids."""
        if isinstance(raw_documents, str):
            return super().transform(raw_documents)  # scikit-learn's own error
        self._check_vocabulary()
        if not TermLookup.applies_to(self):
            return super().transform(raw_documents)
        lookup = self.__dict__.get("_term_lookup")
        if lookup is None or lookup[0] is not self.vocabulary_:  # made once per vocabulary, never pickled
            lookup = self._term_lookup = (self.vocabulary_, TermLookup(self.vocabulary_))
        decode, preprocess, tokenize = self.decode, self.build_preprocessor(), self.build_tokenizer()
        return lookup[1].count(raw_documents, lambda doc: tokenize(preprocess(decode(doc))), self.ngram_range, self.dtype, self.binary)

    def __getstate__(self):
        state = dict(super().__getstate__())  # a copy: Python's own is this object's __dict__ itself
        state.pop("_term_lookup", None)
        return state

    def _document_count_bounds(self, documents: int) -> tuple[float, float]:
        """`min_df` and `max_df` as document counts, as scikit-learn reads them."""
        low = self.min_df if isinstance(self.min_df, Integral) else self.min_df * documents
        high = self.max_df if isinstance(self.max_df, Integral) else self.max_df * documents
        if high < low:
            raise ValueError("max_df corresponds to < documents than min_df")
        return low, high

    def _surviving_columns(self, totals: np.ndarray) -> np.ndarray:
        """Of the columns numbered by term (the document-frequency bounds already applied), those
        `CountVectorizer` keeps: at most `max_features`, the most frequent, ties broken by the same sort
        of the same column sums."""
        columns = np.arange(len(totals))
        if self.max_features is None or len(columns) <= self.max_features:
            return columns
        return np.sort(columns[(-totals).argsort()[: self.max_features]])


def _sum_dtype(dtype) -> np.dtype:
    """The dtype of a matrix's column sums (scipy casts as numpy does). The cap's sort must see the
    values scikit-learn sees, in the same type: a sort of another type may break ties another way."""
    return np.zeros(0, dtype=dtype).sum().dtype


@dataclass
class _Counted:
    """Pass 2's answer: each document's counts of the frequent n-grams, row after row in two flat
    buffers, with each n-gram's text and total. An n-gram is named by its position among the frequent
    hashes until `matrix` gives it its column."""

    joined: str  # the n-grams' texts, one after the other in the order the corpus first uses them
    ends: np.ndarray  # where each text ends in `joined`
    first_use: np.ndarray  # each n-gram's place in that order
    totals: np.ndarray
    row_lengths: np.ndarray
    grams: np.ndarray  # int32; the first `row_lengths.sum()` are written
    counts: np.ndarray  # int32, beside `grams`

    # The texts are kept joined, not as a string object each: a million small strings, most of them
    # cut by the cap, left the survivors scattered over memory the allocator could not give back.
    def texts(self, ngrams: np.ndarray) -> np.ndarray:
        """The texts of these n-grams, made a slice at a time (a million offsets as Python ints at once
        cost more than the texts)."""
        texts = np.empty(len(ngrams), dtype=object)
        for at in range(0, len(ngrams), TEXTS_AT_ONCE):
            places = self.first_use[ngrams[at : at + TEXTS_AT_ONCE]]
            starts, ends = np.where(places > 0, self.ends[places - 1], 0).tolist(), self.ends[places].tolist()
            texts[at : at + len(places)] = [self.joined[start:end] for start, end in zip(starts, ends)]
        return texts

    def by_term(self) -> np.ndarray:
        """The n-grams in the order of their texts. All the texts exist only for the sort, made one after
        the other and dropped together, so their memory goes back whole."""
        return np.argsort(self.texts(np.arange(len(self.first_use))), kind="stable")

    def matrix(self, column: np.ndarray, width: int, dtype, binary: bool) -> sparse.csr_matrix:
        """The document-term matrix over the n-grams `column` numbers (-1: cut), compacted in place in
        the buffers pass 2 wrote: a copy per row, concatenated and then sliced to the kept columns, held
        three copies of the matrix at once and left the freed ones scattered over the heap."""
        if np.dtype(dtype).itemsize == self.counts.itemsize:
            values = self.counts.view(dtype)  # a value never lands past the count it was made from
        else:
            values = np.empty(len(self.counts), dtype=dtype)
        lengths = np.empty(len(self.row_lengths), dtype=np.int64)
        read = write = 0
        for first in range(0, len(self.row_lengths), CHUNK_DOCUMENTS):
            rows = self.row_lengths[first : first + CHUNK_DOCUMENTS]
            end = read + int(rows.sum())
            columns = column[self.grams[read:end]]
            kept = columns >= 0
            counts = self.counts[read:end][kept]  # copied before anything is written over it
            written = write + len(counts)
            self.grams[write:written] = columns[kept]
            values[write:written] = 1 if binary else counts
            lengths[first : first + len(rows)] = np.bincount(np.repeat(np.arange(len(rows)), rows)[kept], minlength=len(rows))
            read, write = end, written
        indptr = np.concatenate([[0], np.cumsum(lengths)])
        return sparse.csr_matrix((values[:write], self.grams[:write], indptr), shape=(len(lengths), width))


def _count(documents: list, analyze, frequent: np.ndarray, entries: int, binary: bool) -> _Counted:
    """Pass 2: each document's counts of the frequent n-grams (at most `entries` in all), and each
    n-gram's text and total (its document frequency when `binary`, as a binary CountVectorizer's cap
    counts). The buffers are allocated for the most entries pass 1 saw; the pages never written are
    never resident."""
    texts, joined = [], []  # the new n-grams' texts: of this chunk, and of every chunk joined
    seen = np.full(len(frequent), -1, dtype=np.int64)  # the order in which the corpus first uses each n-gram
    totals = np.zeros(len(frequent), dtype=np.int64)
    row_lengths = np.zeros(len(documents), dtype=np.int64)
    grams, counts = np.empty(entries, dtype=np.int32), np.empty(entries, dtype=np.int32)
    used = at = 0
    for start in range(0, len(documents), CHUNK_DOCUMENTS):
        chunk_start = at
        for row, doc in enumerate(documents[start : start + CHUNK_DOCUMENTS], start):
            doc_grams = analyze(doc)
            hashes = np.fromiter(map(hash, doc_grams), dtype=np.int64, count=len(doc_grams))
            where = np.minimum(np.searchsorted(frequent, hashes), len(frequent) - 1)
            hits = np.flatnonzero(frequent[where] == hashes)
            columns, first, doc_counts = np.unique(where[hits], return_index=True, return_counts=True)
            new = np.flatnonzero(seen[columns] < 0)
            new = new[np.argsort(first[new])]  # in the order this document uses them
            texts.extend(doc_grams[position] for position in hits[first[new]].tolist())
            seen[columns[new]] = np.arange(used, used + len(new))
            used += len(new)
            # Within a row, scikit-learn's fitted matrix lists n-grams in the order the corpus first used
            # them (it numbers them so while counting, then renumbers the columns by term without
            # re-sorting the rows). The same layout makes the solver's sums, and so the model, identical.
            layout = np.argsort(seen[columns])
            grams[at : at + len(columns)] = columns[layout]
            counts[at : at + len(columns)] = doc_counts[layout]
            row_lengths[row] = len(columns)
            at += len(columns)
        chunk = slice(chunk_start, at)
        totals += np.bincount(grams[chunk], weights=None if binary else counts[chunk], minlength=len(frequent)).astype(np.int64)
        lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
        joined.append(("".join(texts), lengths))
        texts.clear()
    ends = np.cumsum(np.concatenate([np.zeros(0, dtype=np.int64), *(lengths for _, lengths in joined)]))
    return _Counted("".join(text for text, _ in joined), ends, seen, totals, row_lengths, grams, counts)


def _frequent_hashes(documents: list, analyze, low: float, high: float) -> tuple[np.ndarray, int]:
    """Pass 1: the sorted hashes of the n-grams in at least `low` and at most `high` documents, and how
    many distinct n-grams the documents have in all (an upper bound on the matrix's entries)."""
    hashes, counts, entries = np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64), 0
    for start in range(0, len(documents), CHUNK_DOCUMENTS):
        chunk = array("q")  # one growing buffer: an array a document scattered the freed ones over the heap
        for doc in documents[start : start + CHUNK_DOCUMENTS]:
            chunk.extend(set(map(hash, analyze(doc))))
        entries += len(chunk)
        unique, frequency = np.unique(np.frombuffer(chunk, dtype=np.int64), return_counts=True)
        hashes, counts = _merge_counts(hashes, counts, unique, frequency)
    return hashes[(counts >= low) & (counts <= high)], entries


def _merge_counts(hashes: np.ndarray, counts: np.ndarray, more: np.ndarray, more_counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two sorted runs of (hash, count) as one, the counts of a hash in both added. A stable sort of
    two sorted runs is a merge (linear), where `np.unique` would sort the whole again."""
    merged = np.concatenate([hashes, more])
    order = np.argsort(merged, kind="stable")
    merged, weights = merged[order], np.concatenate([counts, more_counts])[order]
    starts = np.flatnonzero(np.concatenate([[True], merged[1:] != merged[:-1]]))
    return merged[starts], np.add.reduceat(weights, starts)
