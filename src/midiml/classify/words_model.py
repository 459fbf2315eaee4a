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

from functools import partial
from typing import Any

import numpy as np
import pandas as pd
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from midiml.represent.features import WORDS_COLUMN
from midiml.represent.words import ngrams


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
                TfidfVectorizer(
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
