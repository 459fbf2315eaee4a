"""One classifier kind fitted for every task: what stage ``train_classifier@<model>`` (and
``train_classifier_words`` for the words model) computes, kept as values for the selection.

A feature model's fit (``ModelFit``) holds all that the selection needs from it, so that a
change of one model's hyperparameters refits that model only:

- the fitted model (grid search on the training songs, refit with the re-encoded copies);
- its held-out-source refits (``held_out.leaf_held_out``): the vote's and the blend's
  held-out scores are its members' put through the served tree (``held_out.combine_leaves``);
- its out-of-fold probabilities as the vote's cross-validation refits it (``vote_folds``):
  the vote's CV score is computed from its members' (``selection.vote_cv_score``).
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from hydra.utils import instantiate
from joblib import Parallel, delayed
from sklearn.base import clone
from sklearn.calibration import CalibratedClassifierCV as Calibrated
from sklearn.model_selection import StratifiedKFold
from sklearn.preprocessing import LabelEncoder

from midiml import tracking
from midiml.classify.held_out import LeafRefits, leaf_held_out, leaf_input
from midiml.classify.ngram_counts import (
    CountedRows,
    count_ngrams,
    counted_vectorizers,
    first_vectorizer,
)
from midiml.classify.pipelines import (
    FittedModel,
    TaskData,
    TaskSkipped,
    build_task,
    feature_matrix,
    fit_beside,
    searched_feature_model,
    with_copies,
)
from midiml.classify.served import WORDS
from midiml.classify.source_weighting import (
    song_sources,
    source_power,
    training_weights,
)
from midiml.io import atomic_path, pickle_ready
from midiml.represent.features import WORDS_COLUMN

CONCERN = "classification"  # the MLflow concern of every classifier run


@dataclass
class ModelFit:
    """One model of one task, fitted, with what the selection stage combines."""

    fitted: Any  # FittedModel, or the words pipeline (fitted) for WORDS
    held_out: LeafRefits  # source -> (classes, probabilities) or the reason of a refusal
    truths: dict[str, np.ndarray]  # source -> labels of its held-out songs
    vote_folds: list[np.ndarray] | str | None = None  # out-of-fold probabilities or reason
    info: dict[str, Any] = field(default_factory=dict)


def task_fits_path(fits_dir: Path, task: str) -> Path:
    return fits_dir / f"{task}.pkl"


def save_fit(fit: ModelFit | dict[str, str], path: Path) -> None:
    """A task's fit as a pickle, as ``pipelines.save_model`` writes a model (and why)."""
    import pickle

    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        pickle.dump(pickle_ready(fit), f, protocol=5)


def load_fit(path: Path) -> ModelFit | dict[str, str]:
    """A task's fit, or ``{"skipped": reason}``."""
    import pickle

    with open(path, "rb") as f:
        return pickle.load(f)


def tasks_of(params: Any, files: pd.DataFrame, splits: pd.DataFrame) -> dict[str, Any]:
    """Each configured task as TaskData, or the reason it is skipped (a str)."""
    cfg = params.classifier
    out: dict[str, Any] = {}
    for name in cfg.tasks:
        try:
            out[name] = build_task(name, files, splits, cfg)
        except TaskSkipped as exc:
            out[name] = str(exc)
    return out


def _fold_proba(estimator: Any, X: np.ndarray, y: np.ndarray, X_test: np.ndarray) -> np.ndarray:  # noqa: N803
    return estimator.fit(X, y).predict_proba(X_test)


def vote_folds(
    fitted: FittedModel,
    task: TaskData,
    table: pd.DataFrame,
    seed: int,
    n_jobs: int = 1,
    searched: list[np.ndarray] | None = None,
) -> list[np.ndarray] | str:
    """Out-of-fold probabilities (classes in sorted order) of ``fitted``'s model refitted
    with its chosen hyperparameters on each stratified fold of the training songs, exactly as
    the soft vote's cross-validation refits its members (``VotingClassifier`` fits them on
    label-encoded classes; a calibrated SVM's inner folds shrink to the fold's smallest
    class); or the reason the vote cannot be cross-validated.

    ``searched``: the grid search's probabilities of the chosen hyperparameters on these
    very folds (``pipelines.GridSearch.fold_proba``), the same numbers as a refit gives
    (classes encoded or not, the same sorted order): taken as they are. Without them (a
    calibrated SVM, whose grid search fitted it uncalibrated) the model is refitted."""
    X, y = feature_matrix(table, task.ids("train"), fitted.columns), task.y("train")
    folds = fitted.cv_folds
    # an outer fold's training part of a class of n songs has n - ceil(n / folds) of them:
    # the calibrated SVM's own folds must fit into that
    smallest = int(min(n - -(-n // folds) for n in pd.Series(y).value_counts()))
    if smallest < 2:
        return "too few training songs per class to cross-validate the vote"
    if searched is not None and not isinstance(fitted.pipeline.named_steps["clf"], Calibrated):
        return list(searched)
    pipe = clone(fitted.pipeline)
    if isinstance(pipe.named_steps["clf"], Calibrated):
        pipe.set_params(
            clf__cv=StratifiedKFold(min(folds, smallest), shuffle=True, random_state=seed)
        )
    encoded = LabelEncoder().fit(y).transform(y)
    splits = StratifiedKFold(folds, shuffle=True, random_state=seed).split(X, y)
    return Parallel(n_jobs=n_jobs)(
        delayed(_fold_proba)(clone(pipe), X[tr], encoded[tr], X[te]) for tr, te in splits
    )


def fit_model(
    params: Any,
    task: TaskData,
    model: str,
    table: pd.DataFrame,
    copies: pd.DataFrame | None,
    source: pd.Series,
) -> ModelFit:
    """``model`` (a key of ``classifier.models``) fitted for ``task``: grid search, final refit
    with ``copies`` (re-encoded training rows), held-out-source refits (in worker processes
    while the final refit runs), the vote's folds."""
    cfg, seed = params.classifier, int(params.seed)
    n_jobs = int(cfg.get("n_jobs", 1))
    ids = task.ids("train")

    def held_out(pipeline: Any, columns: list[str], power: float) -> tuple:
        return leaf_held_out(
            pipeline, columns, table, ids, task.labels, source, copies, power, n_jobs
        )

    fitted, search, (held, truths) = searched_feature_model(
        task, model, table, cfg, seed, copies, source, beside=held_out
    )
    folds = vote_folds(fitted, task, table, seed, n_jobs, search.fold_proba)
    return ModelFit(fitted, held, truths, folds)


def fit_words(
    params: Any,
    task: TaskData,
    table: pd.DataFrame,
    copies: pd.DataFrame | None,
    source: pd.Series,
) -> ModelFit:
    """The words model (``classifier.words.estimator``) fitted on the task's training songs
    and their re-encoded copies, weighted by source, with its held-out-source refits: the
    blend's second leaf."""
    cfg = params.classifier
    estimator = instantiate(cfg.words.estimator)
    ids, power = task.ids("train"), source_power(cfg, task.name)
    X, y = with_copies(table, ids, task.labels, copies, [WORDS_COLUMN], leaf_input)
    weights = training_weights(ids, task.labels, copies, source, power)
    final, as_rows = clone(estimator), None
    vectorizer = first_vectorizer(final)
    if vectorizer is not None:  # every refit's rows are among the final fit's: count them once
        counts = count_ngrams(vectorizer.build_analyzer(), X, int(cfg.get("n_jobs", 1)))
        row = {text: i for i, text in enumerate(X)}
        ranked = counts.by_rank()  # what the workers need: integers, not the n-grams' text
        X = CountedRows(counts, np.arange(len(X)))  # noqa: N806

        def as_rows(texts: np.ndarray) -> CountedRows:
            return CountedRows(ranked, np.fromiter((row[t] for t in texts), np.int64, len(texts)))

    with counted_vectorizers(final), ThreadPoolExecutor(1) as pool:
        # the final fit beside the held-out refits' workers
        future = fit_beside(pool, final, X, y, weights)
        held, truths = leaf_held_out(
            estimator,
            [WORDS_COLUMN],
            table,
            ids,
            task.labels,
            source,
            copies,
            power,
            int(cfg.get("n_jobs", 1)),
            as_rows,
        )
        fitted = future.result()
    return ModelFit(fitted, held, truths, info={"estimator": estimator, "power": power})


def read_copies(copies_dir: Path, task: str) -> pd.DataFrame | None:
    """The re-encoded training rows of ``task`` (stage ``classifier_copies``), or None."""
    path = copies_dir / f"{task}.parquet"
    if not path.exists():
        return None
    table = pd.read_parquet(path)
    return table if len(table) else None


def fit_all_tasks(
    params: Any,
    model: str,
    files: pd.DataFrame,
    splits: pd.DataFrame,
    table: pd.DataFrame,
    copies_dir: Path,
    out_dir: Path,
    log=print,
) -> dict[str, dict[str, str | None]]:
    """Stage ``train_classifier@<model>``: ``model`` (or WORDS) for every task it applies to,
    one file per task in ``out_dir`` (a ``ModelFit`` or ``{"skipped": reason}``). Returns
    each task's MLflow run id, for ``reports/timings/`` (kept out of the fits: they change
    every run)."""
    source = song_sources(files)
    run_ids: dict[str, dict[str, str | None]] = {}
    words_tasks = list((params.classifier.get("words") or {}).get("tasks") or [])
    for name, task in tasks_of(params, files, splits).items():
        if model == WORDS and name not in words_tasks:
            continue
        if isinstance(task, str):
            save_fit({"skipped": task}, task_fits_path(out_dir, name))
            continue
        start = time.perf_counter()
        copies = read_copies(copies_dir, name)
        if model == WORDS:
            fit = fit_words(params, task, table, copies, source)
        else:
            with tracking.run(params, CONCERN, f"{name}/{model}") as run:
                try:
                    fit = fit_model(params, task, model, table, copies, source)
                except TaskSkipped as exc:
                    save_fit({"skipped": str(exc)}, task_fits_path(out_dir, name))
                    continue
                if run is not None:
                    log_fit(fit.fitted)
                run_ids[name] = {"run_id": run.info.run_id if run else None}
        save_fit(fit, task_fits_path(out_dir, name))
        log(
            f"{name}/{model}: fitted with {len(fit.held_out)} held-out refits "
            f"({time.perf_counter() - start:.1f} s)"
        )
    return run_ids


def log_fit(fitted: Any) -> None:
    """A fitted model's chosen hyperparameters and CV score, to the active MLflow run."""
    import mlflow

    mlflow.log_params({f"best.{k}": str(v) for k, v in fitted.best_params.items()})
    mlflow.log_params({"task": fitted.task, "model": fitted.model, "cv_folds": fitted.cv_folds})
    if not np.isnan(fitted.cv_macro_f1):
        mlflow.log_metric("cv_macro_f1", fitted.cv_macro_f1)
