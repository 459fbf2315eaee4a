"""The words model, and its blend with the feature vote.

A song's musical words (``represent/words.py``) are counted as tf-idf n-grams and read by a
logistic regression: it learns which melodic figures, bass moves, textures, articulations
and chord degrees each genre uses, in order, which the averaged features cannot see. Held out of
training, a source of piano arrangements of game music looks classical to the features
more often than to the words; the two err on different songs, so ``MusicAndWords``
averages their probabilities (``classifier.words.weight`` on the words).

The blend takes one input array per song: the feature columns of the vote, then the words
(so it is an object array); ``model_input`` builds it from a feature table.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from midiml.classify.source_weighting import fit_weighted
from midiml.represent.features import WORDS_COLUMN
from midiml.represent.words import ngrams

MEMO_SIZE = 10_000  # songs whose words' probabilities a blend keeps (their words: tens of MB)


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


class MusicAndWords(ClassifierMixin, BaseEstimator):
    """Weighted mean of the probabilities of ``music`` (an estimator on the numeric columns,
    every column but the last) and ``words`` (an estimator on the last column, the words).

    ``music`` may be already fitted and frozen (``sklearn.frozen.FrozenEstimator``): fitting
    the blend then fits the words only."""

    def __init__(self, music: Any = None, words: Any = None, weight: float = 0.5) -> None:
        self.music = music
        self.words = words
        self.weight = weight

    @staticmethod
    def _split(X: Any) -> tuple[np.ndarray, np.ndarray]:  # noqa: N803
        X = np.asarray(X, dtype=object)
        return X[:, :-1].astype(np.float64), as_text(X[:, -1])

    @classmethod
    def of_fitted(cls, music: Any, words: Any, words_fitted: Any, weight: float) -> MusicAndWords:
        """The blend of a fitted (frozen) ``music`` model and ``words_fitted`` (``words``
        fitted), as ``fit`` would leave it: the words model is fitted in a stage of its own."""
        blend = cls(music, words, weight)
        blend.music_, blend.words_ = music, words_fitted
        if list(music.classes_) != list(words_fitted.classes_):
            raise ValueError("the music and words models learned different classes")
        blend.classes_ = music.classes_
        blend._memo = {}
        return blend

    def fit(self, X: Any, y: Any, sample_weight: np.ndarray | None = None) -> MusicAndWords:  # noqa: N803
        """Fit both models; ``sample_weight`` (per row) reaches each model's last step."""
        numbers, text = self._split(X)
        self.music_ = fit_weighted(clone(self.music), numbers, y, sample_weight)
        self.words_ = fit_weighted(clone(self.words), text, y, sample_weight)
        if list(self.music_.classes_) != list(self.words_.classes_):
            raise ValueError("the music and words models learned different classes")
        self.classes_ = self.music_.classes_
        self._memo: dict[str, np.ndarray] = {}
        return self

    def _words_proba(self, text: np.ndarray) -> np.ndarray:
        """The words model's probabilities of ``text``, each distinct song's words read once
        and kept (up to ``MEMO_SIZE`` songs): turning words into n-grams is the slow part of
        a prediction, and the evaluation asks again for the same songs (test scores, the
        blind folder, permutation importance: every numeric column shuffled, the words not,
        in batches of shuffled copies)."""
        memo = getattr(self, "_memo", None)
        if not isinstance(memo, dict):
            memo = self._memo = {}
        if not len(text):
            return np.zeros((0, len(self.classes_)))
        codes, distinct = pd.factorize(pd.Series(text, dtype=object))
        new = [t for t in distinct if t not in memo]
        if new:
            if len(memo) + len(new) > MEMO_SIZE:
                memo.clear()
            memo.update(zip(new, self.words_.predict_proba(as_text(new)), strict=True))
        return np.asarray([memo[t] for t in distinct])[codes]

    def __getstate__(self) -> dict[str, Any]:
        """Pickled without the kept answers (a saved model is the same whatever it read)."""
        state = dict(super().__getstate__())
        state.pop("_memo", None)
        return state

    def predict_proba(self, X: Any) -> np.ndarray:  # noqa: N803
        numbers, text = self._split(X)
        w = float(self.weight)
        return (1 - w) * self.music_.predict_proba(numbers) + w * self._words_proba(text)

    def predict(self, X: Any) -> np.ndarray:  # noqa: N803
        return np.asarray(self.classes_)[self.predict_proba(X).argmax(axis=1)]


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
