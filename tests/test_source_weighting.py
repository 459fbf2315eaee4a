"""Training rows weighed by source: each genre keeps its weight, its sources share it as
configured, and the weights reach the estimators of every fit (final and held-out refits)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from midiml.classify.copies import row_songs
from midiml.classify.pipelines import FittedModel, with_copies
from midiml.classify.robustness import held_out_source_predictions
from midiml.classify.served import VOTE_AND_WORDS, WORDS, Member, candidates, members, unfrozen
from midiml.classify.source_weighting import (
    fit_weighted,
    source_power,
    source_weights,
    training_weights,
)
from midiml.classify.words_model import words_classifier


def test_each_label_keeps_its_weight_and_its_sources_share_it_by_power():
    songs = [f"a{i}" for i in range(6)] + ["b0", "b1"] + [f"c{i}" for i in range(4)]
    source = pd.Series({s: s[0] for s in songs})
    y = np.array(["x"] * 8 + ["y"] * 4, dtype=object)
    assert source_weights(songs, y, source, 0.0) is None
    even = source_weights(songs, y, source, 1.0)
    # every row of label y is from one source: all weigh one
    np.testing.assert_allclose(even[8:], 1.0)
    # label x keeps a total of 8, shared equally by its two sources
    np.testing.assert_allclose(even[:6].sum(), 4.0)
    np.testing.assert_allclose(even[6:8].sum(), 4.0)
    half = source_weights(songs, y, source, 0.5)
    np.testing.assert_allclose(half[:8].sum(), 8.0)
    np.testing.assert_allclose(half[6] / half[0], (6 / 2) ** 0.5)  # in between
    assert half[6] < even[6] and half[0] > even[0]


def test_row_songs_name_the_rows_with_copies_builds():
    table = pd.DataFrame({"file_id": ["a", "b", "c"], "x": [1.0, 2.0, 3.0]})
    labels = pd.Series(["lofi", "classical", "classical"], index=["a", "b", "c"])
    copies = pd.DataFrame(
        {"file_id": ["c#copy0", "a#copy0", "b#excerpt0"], "x": [30.0, 10.0, 20.0]}
    )
    X, y = with_copies(table, ["a", "b"], labels, copies, ["x"])
    songs = row_songs(["a", "b"], copies)
    assert songs == ["a", "b", "a", "b"]  # the copy of c, a song left out, stays out
    assert labels.loc[songs].tolist() == y.tolist()
    assert X[:, 0].tolist() == [1.0, 2.0, 10.0, 20.0]
    source = pd.Series({"a": "one", "b": "two", "c": "two"})
    w = training_weights(["a", "b"], labels, copies, source, 1.0)
    assert w is not None and len(w) == len(y)
    assert training_weights(["a", "b"], labels, copies, None, 1.0) is None


def test_configured_power_is_for_the_listed_tasks_only():
    cfg = OmegaConf.create({"source_weighting": {"tasks": ["genre"], "power": 0.5}})
    assert source_power(cfg, "genre") == 0.5
    assert source_power(cfg, "composer") == 0.0
    assert source_power(OmegaConf.create({}), "genre") == 0.0


def test_a_weight_of_two_counts_a_row_twice_in_a_pipeline():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    y = np.where(X[:, 0] + rng.normal(scale=0.5, size=40) > 0, "p", "q").astype(object)
    pipe = Pipeline([("clf", LogisticRegression(max_iter=1000))])
    w = np.ones(40)
    w[:5] = 2.0
    weighted = fit_weighted(pipe, X, y, w).named_steps["clf"].coef_.copy()
    doubled = pipe.fit(np.vstack([X, X[:5]]), np.concatenate([y, y[:5]])).named_steps["clf"]
    np.testing.assert_allclose(weighted, doubled.coef_, atol=1e-4)


def test_a_vote_fits_each_member_weighted():
    """A soft vote of pipelines (the served blend's music part, unfrozen) takes the weights
    member by member: metadata routing hands them to each pipeline's classifier."""
    from sklearn.ensemble import VotingClassifier
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(3)
    X = rng.normal(size=(50, 3))
    y = np.where(X[:, 1] + rng.normal(scale=0.7, size=50) > 0, "p", "q").astype(object)
    w = rng.uniform(0.1, 3.0, 50)

    def member(c: float) -> Pipeline:
        return Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression(C=c))])

    vote = VotingClassifier([("a", member(0.1)), ("b", member(10.0))], voting="soft")
    fitted = fit_weighted(vote, X, y, w)
    alone = [fit_weighted(member(c), X, y, w).predict_proba(X) for c in (0.1, 10.0)]
    np.testing.assert_allclose(fitted.predict_proba(X), np.mean(alone, axis=0), atol=1e-9)
    plain = VotingClassifier([("a", member(0.1)), ("b", member(10.0))], voting="soft")
    assert not np.allclose(fitted.predict_proba(X), plain.fit(X, y).predict_proba(X))


def test_the_blend_hands_the_weights_to_both_models():
    """Both the music and the words members of the served blend fit as weighted fits of their
    own: not as unweighted ones."""
    rng = np.random.default_rng(1)
    n = 60
    y = np.array(["a", "b"] * (n // 2), dtype=object)
    numbers = rng.normal(size=(n, 2)) + (y == "b")[:, None] * 0.5
    words = np.array([f"w{k % 7} w{k % 5} {label}x" for k, label in enumerate(y)], dtype=object)
    X = np.column_stack([numbers.astype(object), words])
    w = rng.uniform(0.1, 3.0, n)
    text = words.astype(str)

    def music():
        return Pipeline([("clf", LogisticRegression(max_iter=1000))])

    def blend():
        tree = candidates(
            {"m": music(), "n": music()}, words=words_classifier(min_df=1), vote=["m", "n"]
        )
        return unfrozen(tree[VOTE_AND_WORDS])

    heavy = members(fit_weighted(blend(), X, y, w))
    plain = members(blend().fit(X, y))
    for name, alone, x in [
        ("m", fit_weighted(music(), numbers.astype(float), y, w), numbers.astype(float)),
        (WORDS, fit_weighted(words_classifier(min_df=1), text, y, w), text),
    ]:
        got = heavy[name].model_.predict_proba(x)
        np.testing.assert_allclose(got, alone.predict_proba(x), atol=1e-6)
        assert not np.allclose(got, plain[name].model_.predict_proba(x), atol=1e-3)


def _fitted(power: float) -> FittedModel:
    pipe = Member("logreg", Pipeline([("clf", LogisticRegression(max_iter=1000))]))
    return FittedModel(
        "genre", "logreg", pipe, ["x", "y"], ["f"], None, [], {}, 0.0, 3,
        source_power=power,
    )  # fmt: skip


@pytest.fixture
def three_sources():
    """Label x from a big source (noisy) and a small one (clean), label y from two."""
    rng = np.random.default_rng(2)
    rows = []
    for src, label, n, centre, spread in [
        ("big", "x", 30, 0.2, 1.5),
        ("small", "x", 6, -1.5, 0.2),
        ("y1", "y", 12, 1.0, 0.3),
        ("y2", "y", 12, 1.2, 0.3),
    ]:
        rows += [(f"{src}{i}", src, label, centre + spread * rng.normal()) for i in range(n)]
    frame = pd.DataFrame(rows, columns=["file_id", "source", "genre", "f"])
    labels = frame.set_index("file_id")["genre"]
    return frame[["file_id", "f"]], labels, frame.set_index("file_id")["source"]


def test_held_out_refits_weigh_the_other_sources_as_the_model_was_trained(three_sources):
    table, labels, source = three_sources
    ids = list(labels.index)
    plain = held_out_source_predictions(_fitted(0.0), table, ids, labels, source)
    even = held_out_source_predictions(_fitted(1.0), table, ids, labels, source)
    # leaving out y1: the refit learns x from big and small, weighed equally at power 1
    train = [i for i in ids if source[i] != "y1"]
    X, y = with_copies(table, train, labels, None, ["f"])
    w = training_weights(train, labels, None, source, 1.0)
    manual = fit_weighted(Pipeline([("clf", LogisticRegression(max_iter=1000))]), X, y, w)
    test = table.set_index("file_id").loc[[i for i in ids if source[i] == "y1"], ["f"]]
    np.testing.assert_allclose(even["y1"][0], manual.predict_proba(test.to_numpy()))
    assert not np.allclose(even["y1"][0], plain["y1"][0])
