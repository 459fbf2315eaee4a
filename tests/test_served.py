"""The served classifier is one scikit-learn estimator tree, built from ``classifier.served``
with ``hydra.utils.instantiate``; held-out-source and CV combinations go through that tree."""

import numpy as np
from hydra.utils import instantiate
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from midiml.classify.served import (
    VOTE,
    VOTE_AND_WORDS,
    WORDS,
    LoneSourcePrior,
    combined_proba,
    members,
    unfrozen,
)
from midiml.classify.words_model import words_classifier
from midiml.config import load_params


def _songs(n: int = 48):
    rng = np.random.default_rng(0)
    y = np.array(["lofi", "jazz", "rock"] * (n // 3), dtype=object)
    numbers = rng.normal(size=(n, 3)) + (y == "lofi")[:, None]
    words = np.array([f"{label}x w{k % 5}" for k, label in enumerate(y)], dtype=object)
    return np.column_stack([numbers.astype(object), words]), numbers, words.astype(str), y


def _model(c: float) -> Pipeline:
    return Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression(C=c))])


def test_the_configured_served_model_is_one_estimator_tree():
    X, numbers, text, y = _songs()
    build = instantiate(load_params().classifier.served)  # the committed config
    fitted = {m: _model(c).fit(numbers, y) for m, c in (("logreg", 1.0), ("svm", 0.1))}
    words = words_classifier(min_df=1).fit(text, y)
    trees = build(fitted, words=words)
    assert set(trees) == {"logreg", "svm", VOTE, VOTE_AND_WORDS}
    blend = trees[VOTE_AND_WORDS].fit(X, y)
    assert isinstance(blend, LoneSourcePrior) and set(members(blend)) == {"logreg", "svm", WORDS}
    # the tree's answer is the configured arithmetic: (1 - w) * mean(models) + w * words
    w = float(load_params().classifier.words.weight)
    music = np.mean([fitted[m].predict_proba(numbers) for m in fitted], axis=0)
    expected = (1 - w) * music + w * words.predict_proba(text)
    np.testing.assert_allclose(blend.predict_proba(X), expected, atol=1e-12)
    # held-out combination: the members' probabilities through the same tree
    probas = {m: fitted[m].predict_proba(numbers) for m in fitted} | {
        WORDS: words.predict_proba(text)
    }
    np.testing.assert_allclose(combined_proba(blend, probas, sorted(set(y))), expected, atol=1e-12)
    # the lone-source prior is a parameter of the root, set after the fit
    blend.set_params(prior={"lofi": 3.0})
    lofi = list(blend.classes_).index("lofi")
    assert (blend.predict(X) == "lofi").sum() >= (expected.argmax(axis=1) == lofi).sum()
    np.testing.assert_allclose(blend.predict_proba(X).sum(axis=1), 1.0)
    # a refit of the same tree (clone), weighted by metadata routing, on other songs
    fresh = unfrozen(blend)
    assert fresh.prior is None and clone(fresh).get_params()["estimator__weights"] == [
        1 - w,
        w,
    ]
    refit = fresh.fit(X, y, sample_weight=np.linspace(0.5, 2.0, len(y)))
    assert list(refit.classes_) == sorted(set(y))
