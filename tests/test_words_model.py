"""``WordsVectorizer`` counts n-grams faster than scikit-learn's ``TfidfVectorizer`` and
must give exactly its vocabulary and matrices (fit and transform)."""

from functools import partial

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer

from midiml.classify.words_model import WordsVectorizer
from midiml.represent.words import ngrams


def _songs(n: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    words = ["up2", "down1", "rep", "I", "V", "vi", "arp", "leg", "stac", "rest"]
    return [
        "\\n".join(" ".join(rng.choice(words, rng.integers(3, 12))) for _ in range(6))
        for _ in range(n)
    ]


def test_words_vectorizer_is_sklearns() -> None:
    kwargs = {
        "analyzer": partial(ngrams, n_max=3),
        "min_df": 2,
        "max_features": 300,
        "sublinear_tf": True,
    }
    train, other = _songs(80, 0), _songs(20, 1) + ["", "unknown words only"]
    ours, theirs = WordsVectorizer(**kwargs), TfidfVectorizer(**kwargs)
    a, b = ours.fit_transform(train), theirs.fit_transform(train)
    assert ours.vocabulary_ == theirs.vocabulary_
    assert list(ours.vocabulary_) == list(theirs.vocabulary_)
    assert (a != b).nnz == 0 and np.array_equal(a.indices, b.indices)
    c, d = ours.transform(other), theirs.transform(other)
    assert (c != d).nnz == 0 and np.array_equal(c.indptr, d.indptr)
    assert np.array_equal(c.data, d.data)
