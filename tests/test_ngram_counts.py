"""The words model fitted on counted rows is the one fitted on the texts (same pickle, same
probabilities), on all the rows and on any subset of them."""

import pickle

import numpy as np
from sklearn.base import clone

from midiml.classify.ngram_counts import CountedRows, count_ngrams, counted_vectorizers
from midiml.classify.source_weighting import fit_weighted
from midiml.classify.words_model import words_classifier

WORDS = ["do", "re", "mi", "fa", "sol", "la", "ti", "up", "down", "hold", "rest"]


def _texts(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    lines = (
        "\n".join(" ".join(rng.choice(WORDS, rng.integers(0, 12))) for _ in range(3))
        for _ in range(n)
    )
    return np.fromiter(lines, dtype=object, count=n)


def test_counted_rows_fit_like_texts():
    texts = _texts(60)
    y = np.array(["a", "b", "c"] * 20, dtype=object)
    w = np.random.default_rng(1).random(60) + 0.5
    # small max_features: the limit's ties between equally frequent n-grams are exercised
    model = words_classifier(ngram_max=3, min_df=2, max_features=40, C=1.0)
    counts = count_ngrams(model.steps[0][1].build_analyzer(), texts)
    for rows, keys in [(np.arange(60), counts), (np.arange(5, 50, 2), counts.by_rank())]:
        test = np.array([0, 3, 55, 59, 7])
        plain = fit_weighted(clone(model), texts[rows], y[rows], w[rows])
        counted = clone(model)
        with counted_vectorizers(counted):
            fit_weighted(counted, CountedRows(keys, rows), y[rows], w[rows])
            proba = counted.predict_proba(CountedRows(keys, test))
        assert np.array_equal(proba, plain.predict_proba(texts[test]))
        if keys is counts:  # named by their text: the fitted model itself is the same
            assert pickle.dumps(counted, 5) == pickle.dumps(plain, 5)
            assert np.array_equal(counted.predict_proba(texts[test]), proba)


def test_counted_in_runs_as_in_one():
    texts = _texts(41, seed=3)
    analyze = words_classifier().steps[0][1].build_analyzer()
    one, runs = count_ngrams(analyze, texts), count_ngrams(analyze, texts, n_jobs=3)
    assert one.keys == runs.keys
    for name in ("ids", "counts", "indptr"):
        a, b = getattr(one, name), getattr(runs, name)
        assert a.dtype == b.dtype and np.array_equal(a, b)
