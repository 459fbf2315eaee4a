"""The grid search of a feature model: GridSearchCV's fits, scores and choice (``refit=False``),
keeping the chosen candidate's out-of-fold probabilities, which the soft vote's
cross-validation needs from every member (``fits.vote_folds``).

Used by ``pipelines.searched_feature_model``; the grid comes from ``classifier.models.<m>.grid``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from sklearn.base import clone
from sklearn.metrics import get_scorer
from sklearn.model_selection import ParameterGrid, StratifiedKFold
from sklearn.pipeline import Pipeline


def param_grid(grid_cfg: Any) -> dict[str, list]:
    """``{C: [..]}`` from params -> ``{clf__C: [..]}`` for the pipeline's estimator."""
    from omegaconf import DictConfig, OmegaConf

    plain = OmegaConf.to_container(grid_cfg) if isinstance(grid_cfg, DictConfig) else grid_cfg
    return {
        f"clf__{k}": list(v) if isinstance(v, list | tuple) else [v] for k, v in dict(plain).items()
    }


def cv_folds(y: np.ndarray, wanted: int) -> int:
    """As many stratified folds as asked, but no more than the smallest class has songs."""
    return int(min(wanted, pd.Series(y).value_counts().min()))


@dataclass
class GridSearch:
    """What the grid search of a model found (``grid_search``)."""

    pipeline: Pipeline  # the best hyperparameters, not fitted
    best_params: dict[str, Any]  # as the pipeline names them (``clf__C``)
    best_score: float  # its mean CV score
    # the best candidate's probabilities (classes in sorted order) on each fold's held-back
    # songs, fold by fold; None when the estimator has no ``predict_proba`` (SVC)
    fold_proba: list[np.ndarray] | None


def _fold_fit(
    pipe: Pipeline,
    X: np.ndarray,  # noqa: N803
    y: np.ndarray,
    train: np.ndarray,
    test: np.ndarray,
    scoring: str,
) -> tuple[float, np.ndarray | None]:
    """One candidate on one fold: (its score on the fold's test songs, their probabilities)."""
    pipe.fit(X[train], y[train])
    score = float(get_scorer(scoring)(pipe, X[test], y[test]))
    return score, pipe.predict_proba(X[test]) if hasattr(pipe, "predict_proba") else None


def grid_search(
    pipe: Pipeline,
    grid: dict[str, list],
    X: np.ndarray,  # noqa: N803
    y: np.ndarray,
    scoring: str,
    cv: StratifiedKFold,
    n_jobs: int = 1,
) -> GridSearch:
    """``GridSearchCV(pipe, grid, scoring=scoring, cv=cv, refit=False)``: the same fits (a
    clone per candidate and fold, ``n_jobs`` at a time), the same mean scores and the same
    choice (the first candidate of the best mean), and in addition the best candidate's
    out-of-fold probabilities, which the soft vote's cross-validation needs from every
    member (``fits.vote_folds``): without them it refitted the best candidate on the same
    folds again."""
    candidates = list(ParameterGrid(grid))
    folds = list(cv.split(X, y))
    done = Parallel(n_jobs=n_jobs)(
        delayed(_fold_fit)(clone(pipe).set_params(**params), X, y, train, test, scoring)
        for params in candidates
        for train, test in folds
    )
    scores = np.array([score for score, _ in done]).reshape(len(candidates), len(folds))
    means = np.average(scores, axis=1)  # as GridSearchCV's mean_test_score
    best = int(np.argmax(means))  # GridSearchCV: rank 1 (method "min"), the first of ties
    proba = [p for _, p in done[best * len(folds) : (best + 1) * len(folds)]]
    return GridSearch(
        clone(pipe).set_params(**candidates[best]),
        candidates[best],
        float(means[best]),
        None if any(p is None for p in proba) else proba,
    )
