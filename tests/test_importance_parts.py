"""The evaluate stage's permutation importance in parts of the columns (``queued_importance``):
whether the worker computed a part or its caller took it over, the table is the whole's."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import Future, ProcessPoolExecutor

import numpy as np
import pandas as pd
from omegaconf import OmegaConf
from sklearn.linear_model import LogisticRegression

from midiml.classify.importance import permutation_drops, queued_importance, served_importance
from midiml.classify.pipelines import FittedModel, save_model


class Task:
    """What the importance reads of a task: its test songs and their labels."""

    def __init__(self, ids: list[str], y: np.ndarray) -> None:
        self._ids, self._y = ids, y

    def ids(self, split: str) -> list[str]:
        return self._ids

    def y(self, split: str) -> np.ndarray:
        return self._y


class NeverStarts:
    """An executor whose jobs never start: the caller computes every part itself."""

    def submit(self, *args, **kwargs) -> Future:
        return Future()


def _served(tmp_path):
    rng = np.random.default_rng(0)
    columns = [f"c{i}" for i in range(7)]
    X = rng.normal(size=(60, 7))
    y = np.where(X[:, 0] + 0.5 * X[:, 3] + rng.normal(0, 0.5, 60) > 0, "a", "b").astype(object)
    model = LogisticRegression().fit(X, y)
    fitted = FittedModel("genre", "logreg", model, ["a", "b"], columns, None, [], {}, 0.0, 3)
    path = tmp_path / "served.pkl"
    save_model(fitted, path)
    ids = [f"s/{i}" for i in range(60)]
    table = pd.DataFrame(X, columns=columns).assign(file_id=ids, genre=y)
    params = OmegaConf.create({"seed": 3, "classifier": {"importance": {"n_repeats": 3}}})
    return fitted, path, table, Task(ids, y), params


def test_importance_in_parts_is_the_whole_wherever_each_part_ran(tmp_path):
    fitted, path, table, task, params = _served(tmp_path)
    whole = served_importance(params, path, table, task)
    X = table[fitted.columns].to_numpy()
    every = permutation_drops(fitted.pipeline, X, task.y("test"), 3)
    some = permutation_drops(fitted.pipeline, X, task.y("test"), 3, columns=[5, 1])
    np.testing.assert_array_equal(some, every[[5, 1]])
    assert queued_importance(NeverStarts(), params, path, table, task, parts=3)(fitted) == whole
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=spawn) as pool:
        result = queued_importance(pool, params, path, table, task, parts=3)
        pool.submit(int).result()  # after every part: the worker has run them all
        assert result(fitted) == whole
