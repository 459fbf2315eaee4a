"""The words model's n-grams counted once for all its fits.

The words model (``words_model.words_classifier``) is fitted once on the training songs and
their copies, and once more per held-out source on a subset of those rows. Its tf-idf
vectoriser counts every song's n-grams in pure Python (~9 CPU s on the genre task's 5,489
rows, as long as the logistic regression after it), again in every refit. A song's counts
depend on its own text alone, so ``count_ngrams`` counts each row once, and
``counted_vectorizers`` lets scikit-learn's vectoriser take its counts from there for rows
given as ``CountedRows``: ``CountVectorizer._count_vocab`` is the only step replaced, and its
value is rebuilt exactly (the same vocabulary in the same insertion order, the same sparse
matrix with its entries in the same order), so every step after it is scikit-learn's own on
the same numbers (``tests/test_ngram_counts.py``). Any other input is counted as before.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from itertools import pairwise
from types import MethodType
from typing import Any

import numpy as np
import scipy.sparse as sp
from joblib import Parallel, delayed
from sklearn.feature_extraction import text as sk_text
from sklearn.pipeline import Pipeline


@dataclass(frozen=True)
class NgramCounts:
    """Each row's n-gram counts: row ``r``'s terms are ``ids[indptr[r]:indptr[r + 1]]`` in
    the order they first occur in its text (as the vectoriser lists them), with their
    ``counts``. A term is named in a fitted vocabulary by ``keys[id]``: its text, or, where
    the text is not needed (``by_rank``), its rank in alphabetical order (which orders the
    vocabulary the same way, and travels to worker processes as one integer array)."""

    ids: np.ndarray
    counts: np.ndarray
    indptr: np.ndarray
    keys: Sequence[Any]

    def by_rank(self) -> NgramCounts:
        """The same counts with every term named by its alphabetical rank."""
        order = sorted(range(len(self.keys)), key=self.keys.__getitem__)
        rank = np.empty(len(order), dtype=np.int64)
        rank[order] = np.arange(len(order))
        return NgramCounts(self.ids, self.counts, self.indptr, rank)


@dataclass(frozen=True)
class CountedRows:
    """Rows of an ``NgramCounts`` given to a fit or prediction in place of their texts."""

    counts: NgramCounts
    rows: np.ndarray

    def __len__(self) -> int:
        return len(self.rows)


def count_ngrams(
    analyze: Callable[[Any], list[str]], docs: Sequence[Any], n_jobs: int = 1
) -> NgramCounts:
    """Every doc's terms (``analyze(doc)``) counted, as ``CountVectorizer._count_vocab``
    counts them (terms numbered in order of first occurrence over the docs). With
    ``n_jobs`` > 1 the docs are counted in that many runs of consecutive docs at once
    (processes), then numbered as one run would have (``_joined``)."""
    if n_jobs < 2 or len(docs) < 2:
        return _count(analyze, docs)
    cuts = np.linspace(0, len(docs), n_jobs + 1).astype(int)
    runs = Parallel(n_jobs=n_jobs)(
        delayed(_count)(analyze, docs[a:b]) for a, b in pairwise(cuts) if b > a
    )
    return _joined(runs)


def _count(analyze: Callable[[Any], list[str]], docs: Sequence[Any]) -> NgramCounts:
    """``count_ngrams`` in this process."""
    vocabulary: dict[str, int] = {}
    ids: list[int] = []
    counts = sk_text._make_int_array()
    indptr = [0]
    for doc in docs:
        counter: dict[int, int] = {}
        for feature in analyze(doc):
            i = vocabulary.setdefault(feature, len(vocabulary))
            counter[i] = counter.get(i, 0) + 1
        ids.extend(counter.keys())
        counts.extend(counter.values())
        indptr.append(len(ids))
    return NgramCounts(
        np.asarray(ids, dtype=np.int64),
        np.frombuffer(counts, dtype=np.intc),
        np.asarray(indptr, dtype=np.int64),
        list(vocabulary),
    )


def _joined(runs: list[NgramCounts]) -> NgramCounts:
    """The counts of consecutive runs of docs as one: a term keeps the number of its first
    occurrence over all the docs (the first run's terms, then each later run's new terms in
    the order they occur there)."""
    number: dict[str, int] = {}
    ids, indptr = [], [np.zeros(1, dtype=np.int64)]
    for run in runs:
        renumber = np.fromiter(
            (number.setdefault(key, len(number)) for key in run.keys),
            dtype=np.int64,
            count=len(run.keys),
        )
        ids.append(renumber[run.ids])
        indptr.append(run.indptr[1:] + indptr[-1][-1])
    return NgramCounts(
        np.concatenate(ids),
        np.concatenate([run.counts for run in runs]),
        np.concatenate(indptr),
        list(number),
    )


def _entries(counts: NgramCounts, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(positions in ``counts.ids`` of the entries of ``rows``, in row order; entries per row)."""
    starts = counts.indptr[rows]
    lengths = counts.indptr[rows + 1] - starts
    offsets = np.repeat(starts - np.cumsum(lengths) + lengths, lengths)
    return offsets + np.arange(int(lengths.sum())), lengths


def _counted_vocab(self: Any, raw_documents: Any, fixed_vocab: bool) -> tuple[dict, Any]:
    """``CountVectorizer._count_vocab`` of ``raw_documents``, read from their counts when they
    are ``CountedRows``."""
    if not isinstance(raw_documents, CountedRows):
        return type(self)._count_vocab(self, raw_documents, fixed_vocab)
    counts, rows = raw_documents.counts, np.asarray(raw_documents.rows, dtype=np.int64)
    where, lengths = _entries(counts, rows)
    ids, values = counts.ids[where], counts.counts[where]
    if fixed_vocab:
        vocabulary = self.vocabulary_
        position = {key: i for i, key in enumerate(counts.keys)}
        column = np.full(len(counts.keys), -1, dtype=np.int64)
        for key, col in vocabulary.items():
            if key in position:
                column[position[key]] = col
        j = column[ids]
        known = j >= 0
        j, values = j[known], values[known]
        row_of = np.repeat(np.arange(len(rows)), lengths)[known]
        lengths = np.bincount(row_of, minlength=len(rows))
    else:
        seen, first = np.unique(ids, return_index=True)
        order = seen[np.argsort(first, kind="stable")]  # terms in order of first occurrence
        local = np.empty(len(counts.keys), dtype=np.int64)
        local[order] = np.arange(len(order))
        j = local[ids]
        keys = counts.keys
        names = keys[order].tolist() if isinstance(keys, np.ndarray) else [keys[i] for i in order]
        vocabulary = dict(zip(names, range(len(names)), strict=True))
        if not vocabulary:
            raise ValueError("empty vocabulary; perhaps the documents only contain stop words")
    indptr = np.concatenate([[0], np.cumsum(lengths)])
    X = sp.csr_array(  # noqa: N806 (scikit-learn's name)
        (values, j.astype(np.int32), indptr.astype(np.int32)),
        shape=(len(rows), len(vocabulary)),
        dtype=self.dtype,
    )
    X.sort_indices()
    return vocabulary, sk_text._align_api_if_sparse(X)


def first_vectorizer(estimator: Any) -> Any:
    """The n-gram counting vectoriser that reads ``estimator``'s input (itself, or a
    pipeline's first step), or None: only then can the input be ``CountedRows``."""
    if isinstance(estimator, Pipeline):
        estimator = estimator.steps[0][1]
    return estimator if isinstance(estimator, sk_text.CountVectorizer) else None


@contextlib.contextmanager
def counted_vectorizers(estimator: Any) -> Iterator[Any]:
    """Within: ``estimator``'s first vectoriser takes ``CountedRows`` (any other input as
    before). Afterwards it is as it was: the method is set on the instance and removed again,
    so a fitted vectoriser pickles as if fitted on the texts."""
    vec = first_vectorizer(estimator)
    if vec is not None:
        vec._count_vocab = MethodType(_counted_vocab, vec)
    try:
        yield estimator
    finally:
        if vec is not None:
            del vec._count_vocab
