"""The words model, and its blend with the feature vote.

A song's musical words (``represent/words.py``) are counted as tf-idf n-grams and read by a
logistic regression: it learns which melodic figures, bass moves, textures, articulations
and chord degrees each genre uses, in order, which the averaged features cannot see. Held out of
training, a source of piano arrangements of game music looks classical to the features
more often than to the words; the two err on different songs, so the served blend
(``served.candidates``: ``vote_and_words``) averages their probabilities
(``classifier.words.weight`` on the words).

The blend takes one input array per song: the feature columns of the vote, then the words
(so it is an object array); ``model_input`` builds it from a feature table.
"""

from __future__ import annotations

from collections import Counter
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.feature_extraction import text as sklearn_text
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from midiml.represent.features import WORDS_COLUMN
from midiml.represent.words import ngrams


class WordsVectorizer(TfidfVectorizer):
    """scikit-learn's ``TfidfVectorizer``, counting each song's n-grams with ``Counter`` (C)
    instead of a Python loop per n-gram: the counting was about three quarters of a words
    fit (a song has tens of thousands of n-grams, and every held-out refit counts them
    again). The same counts, the same vocabulary in the same order, the same matrix
    (``tests/test_words_model.py`` compares them with scikit-learn's)."""

    def _count_vocab(self, raw_documents, fixed_vocab):  # noqa: ANN001, ANN202 (sklearn's)
        """``CountVectorizer._count_vocab``: (vocabulary, counts as a CSR matrix)."""
        vocabulary = self.vocabulary_ if fixed_vocab else {}
        analyze = self.build_analyzer()
        j_indices: list[int] = []
        values: list[int] = []
        indptr = [0]
        for doc in raw_documents:
            counts = Counter(analyze(doc))  # keys in order of first appearance, as sklearn's
            if fixed_vocab:
                pairs = [(vocabulary[f], n) for f, n in counts.items() if f in vocabulary]
                j_indices.extend(j for j, _ in pairs)
                values.extend(n for _, n in pairs)
            else:
                j_indices.extend([vocabulary.setdefault(f, len(vocabulary)) for f in counts])
                values.extend(counts.values())
            indptr.append(len(j_indices))
        if not fixed_vocab and not vocabulary:
            raise ValueError("empty vocabulary; perhaps the documents only contain stop words")
        dtype = np.int64 if indptr[-1] > np.iinfo(np.int32).max else np.int32
        X = sp.csr_array(  # noqa: N806
            (
                np.asarray(values, dtype=np.intc),
                np.asarray(j_indices, dtype=dtype),
                np.asarray(indptr, dtype=dtype),
            ),
            shape=(len(indptr) - 1, len(vocabulary)),
            dtype=self.dtype,
        )
        X.sort_indices()
        return vocabulary, sklearn_text._align_api_if_sparse(X)


def words_classifier(
    ngram_max: int = 3,
    min_df: int = 3,
    max_features: int = 50_000,
    C: float = 10.0,  # noqa: N803 (scikit-learn's name)
    max_iter: int = 3000,
) -> Pipeline:
    """tf-idf (sublinear counts) of the 1..ngram_max-grams of each line of words, then a
    class-balanced logistic regression (the lone lo-fi source is small)."""
    return Pipeline(
        [
            (
                "tfidf",
                WordsVectorizer(
                    analyzer=partial(ngrams, n_max=int(ngram_max)),
                    min_df=int(min_df),
                    max_features=int(max_features),
                    sublinear_tf=True,
                ),
            ),
            (
                "clf",
                LogisticRegression(C=float(C), max_iter=int(max_iter), class_weight="balanced"),
            ),
        ]
    )


def as_text(values: Any) -> np.ndarray:
    """Words as an object array of Python strings. Not ``astype(str)``: a fixed-width array
    is as wide as the longest song (a long performance: over 100 MB for a few hundred
    songs), which made every prediction slow."""
    return np.fromiter((str(v) for v in values), dtype=object, count=len(values))


def model_input(table: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """``table[columns]`` as a model's input: floats, or an object array when the words are
    among the columns (the blend's input)."""
    if WORDS_COLUMN in columns:
        if columns[-1] != WORDS_COLUMN:
            raise ValueError(f"{WORDS_COLUMN!r} must be the last column of a model's input")
        return table[columns].to_numpy(dtype=object)
    return table[columns].to_numpy(dtype=np.float64)
