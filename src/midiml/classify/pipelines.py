"""Feature-table classifiers: tasks, scikit-learn pipelines and grid search on train only.

A task is a set of songs with one label each (genre; composer among composers with enough
pieces; Chopin vs other composers). Each model (logistic regression, random forest, extra
trees, SVM) is a Pipeline(StandardScaler, estimator), so the scaler is fitted inside every CV
fold and on the training split only; hyperparameters come from a grid search
(``grid_search.grid_search``, GridSearchCV's) over stratified folds of the training split.
Test songs are only ever predicted, never fitted. Tasks that the data cannot support (one
class, too few songs per class, as on ``data=small``) are skipped with a reason instead of
failing the stage.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from hydra.utils import instantiate
from sklearn.base import clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from midiml.classify.copies import kept_copies
from midiml.classify.grid_search import GridSearch, cv_folds, grid_search, param_grid
from midiml.classify.served import (  # noqa: F401  (VOTE, VOTE_AND_WORDS: the served names)
    VOTE,
    VOTE_AND_WORDS,
    fitted_members,
)
from midiml.classify.source_weighting import fit_weighted, source_power, training_weights
from midiml.classify.words_model import model_input
from midiml.io import atomic_path, pickle_ready
from midiml.represent.features import ARTIFACT_FEATURES, WORDS_COLUMN

ID_COLUMNS = ("file_id", "genre")


class TaskSkipped(Exception):
    """The data cannot support this task; the message is the reason recorded in metrics."""


@dataclass
class TaskData:
    """Labels of one task per song, with each song's split."""

    name: str
    labels: pd.Series  # index file_id -> label (str)
    split: pd.Series  # index file_id -> train/val/test
    positive: str | None = None  # binary tasks: the class F0.5 is about
    genres: list[str] = field(default_factory=list)  # genres the task's songs come from

    def ids(self, split: str) -> list[str]:
        return sorted(self.split.index[self.split == split])

    def y(self, split: str) -> np.ndarray:
        return self.labels.loc[self.ids(split)].to_numpy(dtype=object)

    @property
    def classes(self) -> list[str]:
        return sorted(self.labels.unique())


def build_task(name: str, files: pd.DataFrame, splits: pd.DataFrame, cfg: Any) -> TaskData:
    """Label the songs of task ``name`` as ``classifier.tasks.<name>`` says: ``label``, the
    column of the file table that holds the class (default: the task's name); ``min_pieces``,
    keep the classes with at least that many songs; ``positive`` / ``negative``, a binary
    task (that class against all others, called ``negative``). Raise TaskSkipped when the
    task cannot be learned."""
    ok = files[files["status"] == "ok"].set_index("file_id")
    split = splits.set_index("file_id")["split"].astype(str)
    ok = ok.loc[ok.index.intersection(split.index)]
    tcfg = cfg.tasks[name] or {}
    column = str(tcfg.get("label", name))
    if column not in ok.columns:
        raise ValueError(f"task {name!r}: the file table has no column {column!r}")
    has = ok[ok[column].notna()]
    if has.empty:
        raise TaskSkipped(f"no song has a {column} label")
    labels = has[column].astype(str)
    if tcfg.get("min_pieces") is not None:
        counts = labels.value_counts()
        labels = labels[labels.isin(counts[counts >= int(tcfg.min_pieces)].index)]
    positive = None
    if tcfg.get("positive") is not None:
        positive = str(tcfg.positive)
        labels = pd.Series(
            np.where(labels == positive, positive, str(tcfg.negative)), index=labels.index
        )
    labels = labels.sort_index()
    task = TaskData(
        name,
        labels,
        split.loc[labels.index],
        positive,
        sorted(ok.loc[labels.index, "genre"].astype(str).unique()),
    )
    _check_learnable(task, int(cfg.min_train_per_class))
    return task


def _check_learnable(task: TaskData, min_train: int) -> None:
    if task.labels.nunique() < 2:
        raise TaskSkipped(
            f"{task.labels.nunique()} class(es) with enough songs; need 2 "
            f"({len(task.labels)} songs)"
        )
    train = pd.Series(task.y("train")).value_counts()
    missing = [c for c in task.classes if train.get(c, 0) < min_train]
    if missing:
        raise TaskSkipped(
            f"class(es) {', '.join(missing)} have fewer than {min_train} training songs"
        )
    if len(task.ids("test")) == 0:
        raise TaskSkipped("no test songs")


def feature_columns(table: pd.DataFrame, feature_set: str = "all") -> list[str]:
    """Numeric columns of the feature table except the identifiers; ``robust`` also leaves out
    the file-artifact features (track layout, tempo map, velocities, beat grid, length, key),
    which tell sources apart rather than genres."""

    if feature_set not in ("all", "robust"):
        raise ValueError(f"unknown feature set {feature_set!r}; expected all or robust")
    drop = set(ID_COLUMNS) | (set(ARTIFACT_FEATURES) if feature_set == "robust" else set())
    return [c for c in table.columns if c not in drop and pd.api.types.is_numeric_dtype(table[c])]


def feature_matrix(table: pd.DataFrame, ids: list[str], columns: list[str]) -> np.ndarray:
    """Model input of songs ``ids`` (floats, or objects when the words are a column)."""
    t = table.set_index("file_id")
    missing = [i for i in ids if i not in t.index]
    if missing:
        raise KeyError(f"{len(missing)} songs have no feature row, e.g. {missing[0]}")
    return model_input(t.loc[ids], columns)


def with_copies(
    table: pd.DataFrame,
    ids: list[str],
    labels: pd.Series,
    copies: pd.DataFrame | None,
    columns: list[str],
    as_input: Callable[[pd.DataFrame, list[str]], np.ndarray] = model_input,
) -> tuple[np.ndarray, np.ndarray]:
    """(X, y) to fit on: the songs ``ids`` (rows of ``table``), then their re-encoded copies
    among ``copies`` (feature rows with ids ``<song>#...``), each labelled as its song.

    One place for every fit that learns from copies (a model's final refit, the blend's
    words, each held-out-source refit): a copy of a song left out of a fit stays out too.
    ``as_input`` turns rows into the model's input (``model_input`` by default).
    ``copies.row_songs`` names the song of each row, in the same order."""
    t = table.set_index("file_id")
    X, y = as_input(t.loc[ids], columns), labels.loc[ids].to_numpy(dtype=object)
    if copies is None or not len(copies):
        return X, y
    keep, song = kept_copies(ids, copies)
    return (
        np.concatenate([X, as_input(copies[keep], columns)]),
        np.concatenate([y, labels.loc[song[keep]].to_numpy(dtype=object)]),
    )


def make_pipeline(model_cfg: Any, scaler_cfg: Any = None) -> Pipeline:
    """Scaler + estimator, both built from config (``_target_``); the scaler is refitted on
    whatever the pipeline is fitted on."""
    scaler = instantiate(scaler_cfg) if scaler_cfg else StandardScaler()
    return Pipeline([("scale", scaler), ("clf", instantiate(model_cfg.estimator))])


@dataclass
class Novelty:
    """A simple out-of-distribution score: distance of a song to its nearest training songs
    (standardised features), against the same distance among the training songs themselves."""

    mean: np.ndarray
    scale: np.ndarray
    reference: np.ndarray  # standardised training rows
    threshold: float  # the training songs' 99th percentile of that distance
    k: int = 3

    @classmethod
    def fit(cls, X: np.ndarray, k: int = 3, quantile: float = 0.99) -> Novelty:
        mean, scale = X.mean(axis=0), X.std(axis=0)
        scale = np.where(scale > 0, scale, 1.0)
        ref = (X - mean) / scale
        d = cls._knn(ref, ref, k + 1)[:, 1:].mean(axis=1)  # leave the song itself out
        return cls(mean, scale, ref, float(np.quantile(d, quantile)), k)

    @staticmethod
    def _knn(a: np.ndarray, b: np.ndarray, k: int) -> np.ndarray:
        out = []
        b2 = (b**2).sum(axis=1)
        for i in range(0, len(a), 256):  # chunks: memory stays small for big training sets
            c = a[i : i + 256]
            d2 = (c**2).sum(axis=1)[:, None] + b2[None, :] - 2 * c @ b.T
            out.append(np.sort(np.sqrt(np.maximum(d2, 0.0)), axis=1)[:, :k])
        return np.vstack(out) if out else np.zeros((0, k))

    def score(self, X: np.ndarray) -> np.ndarray:
        """Mean distance to the k nearest training songs over the threshold (> 1: unusual)."""
        z = (X - self.mean) / self.scale
        return self._knn(z, self.reference, self.k).mean(axis=1) / max(self.threshold, 1e-9)


@dataclass
class FittedModel:
    """A fitted pipeline and what the CLI needs to use it on a new file."""

    task: str
    model: str
    pipeline: Pipeline
    classes: list[str]
    columns: list[str]
    positive: str | None
    genres: list[str]
    best_params: dict[str, Any]
    cv_macro_f1: float
    cv_folds: int
    novelty: Novelty | None = None  # how unlike the training songs a new file is
    # its training rows weighed by source (``source_weights``); refits (held-out sources) too
    source_power: float = 0.0

    @property
    def numeric_columns(self) -> list[str]:
        """The feature columns without the words (what ``novelty`` measures)."""
        return [c for c in self.columns if c != WORDS_COLUMN]

    @property
    def class_prior(self) -> dict[str, float] | None:
        """class -> factor on its probability, applied by the served tree
        (``served.LoneSourcePrior``, chosen by ``lone_source.choose_prior``); None: argmax."""
        return getattr(self.pipeline, "prior", None)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Probabilities with columns in ``classes`` order (the class prior applied)."""
        proba = self.pipeline.predict_proba(X)
        order = [list(self.pipeline.classes_).index(c) for c in self.classes]
        return proba[:, order]

    def predict(self, X: np.ndarray) -> np.ndarray:
        """argmax of ``predict_proba`` (so CLI probabilities and reported labels agree)."""
        return np.asarray(self.classes, dtype=object)[self.predict_proba(X).argmax(axis=1)]


def fit_beside(
    pool: ThreadPoolExecutor,
    estimator: Any,
    X: Any,  # noqa: N803
    y: Any,
    weights: Any,
) -> Future:
    """``fit_weighted(estimator, X, y, weights)`` in ``pool``'s thread, with this thread's
    BLAS/OpenMP thread counts: a new thread does not inherit OpenMP's (they are per thread,
    as ``threadpool_limits`` of a stage sets them), and a fit's numbers may depend on them."""
    from threadpoolctl import threadpool_info, threadpool_limits

    here = {lib["prefix"]: lib["num_threads"] for lib in threadpool_info()}

    def fit() -> Any:
        with threadpool_limits(limits=here):
            return fit_weighted(estimator, X, y, weights)

    return pool.submit(fit)


def _source_weighting(
    task: TaskData, cfg: Any, copies: pd.DataFrame | None, source: pd.Series | None
) -> tuple[float, np.ndarray | None]:
    """(the configured power, the weights of the rows ``with_copies`` builds from the task's
    training songs and ``copies``); (0, None) without ``source``."""
    power = source_power(cfg, task.name) if source is not None else 0.0
    return power, training_weights(task.ids("train"), task.labels, copies, source, power)


def searched_feature_model(
    task: TaskData,
    model: str,
    table: pd.DataFrame,
    cfg: Any,
    seed: int,
    copies: pd.DataFrame | None = None,
    source: pd.Series | None = None,
    beside: Callable[[Pipeline, list[str], float], Any] | None = None,
) -> tuple[FittedModel, GridSearch, Any]:
    """Grid-search ``model`` on the task's training songs (stratified CV) and fit the best
    once, on what it is served with; returns it with the search (its folds' probabilities)
    and what ``beside`` returned: work done while the final fit runs in a thread, given an
    unfitted copy of the pipeline that is fitted, its columns and source power (the
    held-out-source refits in worker processes, ``fits.fit_model``), so that the machine's
    cores are not left idle by the final fit (it fits the same model either way).

    ``copies`` (feature rows of re-encoded training songs, ids ``<song>#...``) joins only
    the final fit: in CV a song's copies would sit on both sides of a fold. So does the
    weighting of rows by source (``classifier.source_weighting``; ``source``: song ->
    source): the hyperparameters are searched on the plain songs.
    """
    columns = feature_columns(table, str(cfg.get("feature_set", "all")))
    X, y = feature_matrix(table, task.ids("train"), columns), task.y("train")
    folds = cv_folds(y, int(cfg.cv_folds))
    if folds < 2:
        raise TaskSkipped("a class has fewer than 2 training songs: no cross-validation")
    search = grid_search(
        make_pipeline(cfg.models[model], cfg.get("scaler")),
        param_grid(cfg.models[model].grid),
        X,
        y,
        str(cfg.scoring),
        StratifiedKFold(folds, shuffle=True, random_state=seed),
        int(cfg.get("n_jobs", 1)),
    )
    best = {k.removeprefix("clf__"): v for k, v in search.best_params.items()}
    pipeline = search.pipeline
    power, weights = _source_weighting(task, cfg, copies, source)
    if (copies is not None and len(copies)) or weights is not None:
        X, y = with_copies(table, task.ids("train"), task.labels, copies, columns)
    if not hasattr(pipeline.named_steps["clf"], "predict_proba"):
        # e.g. SVC has no probabilities of its own: calibrate the tuned estimator (Platt)
        calibrated = CalibratedClassifierCV(
            pipeline.named_steps["clf"],
            ensemble=False,
            cv=StratifiedKFold(folds, shuffle=True, random_state=seed),
        )
        pipeline = Pipeline([("scale", pipeline.named_steps["scale"]), ("clf", calibrated)])
    aside = None
    if beside is None:
        pipeline = fit_weighted(pipeline, X, y, weights)
    else:
        template = clone(pipeline)  # before the thread starts fitting ``pipeline``
        with ThreadPoolExecutor(1) as pool:
            final = fit_beside(pool, pipeline, X, y, weights)
            aside = beside(template, columns, power)
            pipeline = final.result()
    fitted = FittedModel(
        task.name,
        model,
        pipeline,
        task.classes,
        columns,
        task.positive,
        task.genres,
        best,
        search.best_score,
        folds,
        Novelty.fit(feature_matrix(table, task.ids("train"), columns)),
        source_power=power,
    )
    return fitted, search, aside


def save_model(
    fitted: FittedModel, path: str | Path, elsewhere: dict[str, str] | None = None
) -> None:
    """``fitted`` as a pickle (protocol 5): Python's C pickler writes the 100 MB served blend
    in 0.17 CPU s where ``joblib.dump``'s pure-Python one took 0.84 s, and reads it in 0.07 s
    instead of 0.36 s; the same bytes every run (``pickle_ready``).

    ``elsewhere``: member name -> the file beside ``path`` that already holds that member
    (``served.fitted_members``: the vote's members are each saved alone too); the member is
    written as a reference to that file, which ``load_model`` follows, instead of a copy
    (the genre vote and blend each held another 76 MB extra-trees forest)."""
    import pickle

    held = fitted_members(fitted.pipeline) if elsewhere else {}
    refs = {n: f for n, f in (elsewhere or {}).items() if n in held and f != Path(path).name}
    shared = {id(held[n]): (f, n) for n, f in refs.items()}

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj: Any) -> tuple[str, str] | None:
            return shared.get(id(obj))

    ready = pickle_ready(fitted, keep=[held[n] for n in refs])  # theirs: written with them
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        Pickler(f, protocol=5).dump(ready)


def load_model(path: str | Path) -> FittedModel:
    """A model ``save_model`` wrote; a member it refers to is read from its own file (once
    per load, so the trees that share it share one object, as when it was saved)."""
    import pickle

    path = Path(path)
    found: dict[tuple[str, str], Any] = {}

    class Unpickler(pickle.Unpickler):
        def persistent_load(self, pid: Any) -> Any:
            file, name = pid
            if (file, name) not in found:
                holder = load_model(path.parent / file)
                found[file, name] = fitted_members(holder.pipeline)[name]
            return found[file, name]

    with open(path, "rb") as f:
        return Unpickler(f).load()
