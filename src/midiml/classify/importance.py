"""What the served genre model relies on: permutation importance on the test songs (the
report's "what the model relies on"), and the same for the model refitted on every column
(``classifier.importance.all_features``: the "before" of the robust features).

The evaluate stage queues the served model's importance on its worker process in parts of
the columns (``queued_importance``); its main process computes, when it needs the result,
the parts the worker has not started, so that neither process waits long for the other.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from midiml.classify.pipelines import (
    FittedModel,
    feature_columns,
    feature_matrix,
    load_model,
)
from midiml.classify.served import unfrozen
from midiml.represent.features import WORDS_COLUMN


def fresh_estimator(fitted: FittedModel) -> Any:
    """An unfitted copy of the served model (``served.unfrozen``)."""
    return unfrozen(fitted.pipeline)


def columns_for(fitted: FittedModel, table: pd.DataFrame, feature_set: str) -> list[str]:
    """The columns of ``table`` in ``feature_set`` ("all" lets the file artifacts back in),
    and the words last when ``fitted`` reads them: the same model on another feature set."""
    words = [WORDS_COLUMN] if WORDS_COLUMN in fitted.columns else []
    return [*feature_columns(table, feature_set), *words]


def permutation_drops(
    estimator: Any,
    X: np.ndarray,
    y: np.ndarray,
    seed: int,
    n_repeats: int = 3,
    batch_rows: int = 20_000,
    columns: Sequence[int] | None = None,
) -> np.ndarray:
    """Drop in accuracy with each column shuffled, per (column, repeat): exactly what
    ``sklearn.inspection.permutation_importance(estimator, X, y, scoring="accuracy",
    n_repeats=n_repeats, random_state=seed)`` computes (the same shuffles, drawn the same way),
    but the shuffled copies are predicted together, about ``batch_rows`` rows a call, in this
    process: one call per copy in worker processes cost 200 s of the evaluate stage (the
    model pickled to a worker per column; a vote's trees predict a few hundred rows per call
    no faster than thousands). ``columns``: only these (by position), rows in their order:
    each column's shuffles are drawn alone, so any subset gives its rows of the whole."""
    X, y = np.asarray(X), np.asarray(y)
    n_rows, n_cols = X.shape
    columns = range(n_cols) if columns is None else list(columns)
    baseline = float((estimator.predict(X) == y).mean())
    # permutation_importance draws one seed for every column from ``random_state``
    column_seed = np.random.RandomState(seed).randint(np.iinfo(np.int32).max + 1)
    per_call = max(1, batch_rows // max(n_rows, 1))
    scores = np.empty((len(columns), n_repeats))
    pending: list[tuple[int, int, np.ndarray]] = []

    def flush() -> None:
        pred = estimator.predict(np.concatenate([copy for _, _, copy in pending]))
        for k, (col, rep, _) in enumerate(pending):
            scores[col, rep] = float((pred[k * n_rows : (k + 1) * n_rows] == y).mean())
        pending.clear()

    for k, col in enumerate(columns):
        rng, order, values = np.random.RandomState(column_seed), np.arange(n_rows), X[:, col]
        for rep in range(n_repeats):
            rng.shuffle(order)  # as sklearn: the shuffles compound, repeat after repeat
            values = values[order]
            copy = X.copy()
            copy[:, col] = values
            pending.append((k, rep, copy))
            if len(pending) >= per_call:
                flush()
    if pending:
        flush()
    return baseline - scores


def top_features(
    estimator: Any,
    X: np.ndarray,  # noqa: N803
    y: np.ndarray,
    columns: list[str],
    seed: int,
    top: int = 10,
    n_repeats: int = 3,
) -> list[dict[str, Any]]:
    """Permutation importance (mean drop in accuracy, ``permutation_drops``) of the ``top``
    most important columns; each column shuffled ``n_repeats`` times from ``seed``."""
    return ranked(permutation_drops(estimator, X, y, seed, n_repeats), columns, top)


def ranked(drops: np.ndarray, columns: list[str], top: int = 10) -> list[dict[str, Any]]:
    """The ``top`` columns by mean drop (``drops``: ``permutation_drops`` of every column)."""
    mean = drops.mean(axis=1)
    order = np.argsort(-mean)[:top]
    return [{"feature": columns[i], "importance": round(float(mean[i]), 4)} for i in order]


def importance_before_after(
    fitted: FittedModel,
    table: pd.DataFrame,
    train_ids: list[str],
    y_train: np.ndarray,
    test_ids: list[str],
    y_test: np.ndarray,
    seed: int,
    n_repeats: int = 3,
    all_features: bool = False,
) -> dict[str, Any]:
    """Top features of the served model and (``all_features``) of the same model refitted
    on every column: what it relies on when the file artifacts are let back in."""
    out = {
        "served": top_features(
            fitted.pipeline,
            feature_matrix(table, test_ids, fitted.columns),
            y_test,
            fitted.columns,
            seed,
            n_repeats=n_repeats,
        )
    }
    if all_features:
        all_cols = columns_for(fitted, table, "all")
        before = fresh_estimator(fitted).fit(feature_matrix(table, train_ids, all_cols), y_train)
        out["all_features"] = top_features(
            before,
            feature_matrix(table, test_ids, all_cols),
            y_test,
            all_cols,
            seed,
            n_repeats=n_repeats,
        )
    return out


def served_importance(
    params: Any, model_file: Path, table: pd.DataFrame, task: Any, n_threads: int = 1
) -> dict[str, Any]:
    """``importance_before_after`` of the model saved at ``model_file`` (the served genre
    model) as ``classifier.importance`` asks. The evaluate stage runs it in a worker process
    beside its other scores (``n_threads``: its BLAS/OpenMP threads, as the stage's own)."""
    from threadpoolctl import threadpool_limits

    imp = params.classifier.get("importance") or {}
    with threadpool_limits(limits=n_threads):
        return importance_before_after(
            load_model(model_file),
            table,
            task.ids("train"),
            task.y("train"),
            task.ids("test"),
            task.y("test"),
            int(params.seed),
            int(imp.get("n_repeats", 3)),
            bool(imp.get("all_features", False)),
        )


def _drops_of(
    fitted: FittedModel, songs: tuple, seed: int, n_repeats: int, part: tuple[int, int]
) -> np.ndarray:
    """``permutation_drops`` of ``fitted`` on ``songs`` ((feature rows, ids, labels)) for its
    columns ``part[0]``, ``part[0] + part[1]``, ..."""
    rows, ids, y = songs
    X = feature_matrix(rows, ids, fitted.columns)  # noqa: N806
    first, step = part
    columns = range(first, X.shape[1], step)
    return permutation_drops(fitted.pipeline, X, y, seed, n_repeats, columns=columns)


@lru_cache(maxsize=1)
def _loaded(model_file: Path) -> FittedModel:
    return load_model(model_file)


def _part_drops(
    model_file: Path, songs: tuple, seed: int, n_repeats: int, part: tuple, n_threads: int
) -> np.ndarray:
    """``_drops_of`` the model saved at ``model_file`` (loaded once per worker process)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=n_threads):
        return _drops_of(_loaded(model_file), songs, seed, n_repeats, part)


def queued_importance(
    pool: Executor,
    params: Any,
    model_file: Path,
    table: pd.DataFrame,
    task: Any,
    n_threads: int = 1,
    parts: int = 8,
) -> Callable[[FittedModel], dict[str, Any]]:
    """The served genre model's ``served_importance``, queued on ``pool`` (one worker) in
    ``parts`` parts of its columns; returns the function that gives it from the same model
    loaded in the caller, computing there every part the worker has not started (a column's
    drops are the same wherever they are computed: ``permutation_drops``). With
    ``all_features`` it is one job (it refits a model)."""
    imp = params.classifier.get("importance") or {}
    if bool(imp.get("all_features", False)):
        whole = pool.submit(served_importance, params, model_file, table, task, n_threads)
        return lambda fitted: whole.result()
    seed, n_repeats = int(params.seed), int(imp.get("n_repeats", 3))
    ids = task.ids("test")
    songs = (table[table["file_id"].isin(set(ids))], ids, task.y("test"))
    queued = [
        pool.submit(_part_drops, model_file, songs, seed, n_repeats, (k, parts), n_threads)
        for k in range(parts)
    ]

    def result(fitted: FittedModel) -> dict[str, Any]:
        drops = np.empty((len(fitted.columns), n_repeats))
        for k, job in enumerate(queued):
            here = job.cancel()  # not started: computed here instead
            part = (k, parts)
            drops[k::parts] = (
                _drops_of(fitted, songs, seed, n_repeats, part) if here else job.result()
            )
        return {"served": ranked(drops, list(fitted.columns))}

    return result
