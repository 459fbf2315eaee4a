"""``grid_search.grid_search`` is GridSearchCV's search (same choice, same score), and the
probabilities it keeps are those the soft vote's cross-validation got by refitting the
chosen model fold by fold (on label-encoded classes)."""

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import LabelEncoder, StandardScaler
from sklearn.svm import SVC

from midiml.classify.boosting import HistGradientBoostingClassifier
from midiml.classify.grid_search import grid_search


def _data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(150, 6))
    y = np.where(X[:, 0] + rng.normal(size=150) > 0.3, "pop", "rock").astype(object)
    y[X[:, 1] > 0.8] = "jazz"
    return X, y


@pytest.mark.parametrize(
    ("estimator", "grid"),
    [
        (LogisticRegression(max_iter=500), {"clf__C": [0.01, 0.1, 1.0, 10.0]}),
        (RandomForestClassifier(n_estimators=20, random_state=0), {"clf__max_depth": [2, None]}),
        (HistGradientBoostingClassifier(max_iter=20, random_state=0), {"clf__max_iter": [20]}),
        (SVC(random_state=0), {"clf__C": [0.1, 1.0]}),
    ],
)
def test_grid_search_is_gridsearchcv(estimator, grid) -> None:
    X, y = _data()
    pipe = Pipeline([("scale", StandardScaler()), ("clf", estimator)])
    cv = StratifiedKFold(4, shuffle=True, random_state=3)
    ours = grid_search(pipe, grid, X, y, "f1_macro", cv, n_jobs=2)
    theirs = GridSearchCV(pipe, grid, scoring="f1_macro", cv=cv, refit=False).fit(X, y)
    assert ours.best_params == theirs.best_params_
    assert ours.best_score == theirs.best_score_
    assert (
        ours.pipeline.get_params()["clf"].get_params()
        == clone(estimator)
        .set_params(**{k.removeprefix("clf__"): v for k, v in theirs.best_params_.items()})
        .get_params()
    )
    if isinstance(estimator, SVC):
        assert ours.fold_proba is None  # no probabilities of its own: the vote refits it
        return
    encoded = LabelEncoder().fit_transform(y)  # as the vote's folds refitted it
    for k, (train, test) in enumerate(cv.split(X, y)):
        refit = clone(ours.pipeline).fit(X[train], encoded[train])
        assert np.array_equal(ours.fold_proba[k], refit.predict_proba(X[test]))
