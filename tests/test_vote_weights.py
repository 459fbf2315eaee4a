"""The vote-weights check (benchmarks/vote_weights.py): its grid, scoring and rule."""

import numpy as np

from tests.conftest import load_script


def _check():
    return load_script("benchmarks/vote_weights.py")


def test_grid_holds_every_weighting_once_as_shares():
    check = _check()
    grid = check.weight_grid(2)
    n = len(check.MUSIC_WEIGHTS) ** 2 * len(check.WORDS_WEIGHTS) - 1  # all zero left out
    assert grid.shape == (n, 3)
    np.testing.assert_allclose(grid.sum(axis=1), 1.0)


def test_accuracy_follows_the_weights_and_the_prior():
    """Two leaves that disagree: the weighting decides which one is followed; a prior on
    a class tips close calls to it."""
    check = _check()
    classes = ["a", "b"]
    right = np.array([[0.9, 0.1], [0.2, 0.8]])  # leaf 0 is right on both songs
    wrong = np.array([[0.1, 0.9], [0.8, 0.2]])
    stack, y = np.stack([right, wrong]), np.array(["a", "b"], dtype=object)
    weights = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])
    acc = check.accuracy_by_weights(stack, y, weights, classes, None)
    assert list(acc[:2]) == [1.0, 0.0]
    tipped = check.accuracy_by_weights(stack, y, weights[2:], classes, {"b": 2.0})
    assert tipped[0] == 0.5  # the tie goes to "b": right on the second song only


def test_rule_averages_genres_and_can_leave_a_source_out():
    check = _check()
    held = {"x1": np.array([1.0, 0.0]), "x2": np.array([0.0, 0.0]), "y1": np.array([0.5, 1.0])}
    genre_of = {"x1": "x", "x2": "x", "y1": "y"}
    loops = np.array([0.0, 1.0])
    np.testing.assert_allclose(check.rule(held, genre_of, loops), [1 / 3, 2 / 3])
    np.testing.assert_allclose(check.rule(held, genre_of, loops, without="x2"), [0.5, 2 / 3])
