"""The project's HistGradientBoostingClassifier: scikit-learn's, with weighted binning done
once per column; the bins and the fitted model must be exactly scikit-learn's."""

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier as SklearnHistGradientBoosting
from sklearn.ensemble._hist_gradient_boosting import binning

from midiml.classify.boosting import HistGradientBoostingClassifier, _find_binning_thresholds


def _data(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Columns with many ties, few values, NaNs, and weights that repeat per 'source'."""
    rng = np.random.default_rng(seed)
    n = 1500
    X = np.column_stack(
        [
            rng.normal(size=n),  # all distinct
            np.round(rng.normal(size=n), 1),  # many ties
            rng.integers(0, 5, n).astype(float),  # few values: midpoints
            np.where(rng.random(n) < 0.1, np.nan, rng.exponential(size=n)),  # NaNs
        ]
    )
    y = np.where(X[:, 0] + rng.normal(size=n) > 0, "a", np.where(X[:, 1] > 0.5, "b", "c"))
    weight = rng.choice([0.5, 0.82, 1.0, 1.7], size=n)
    weight[:20] = 0.0  # zero weights are left out of the edges
    return X, y, weight


def test_weighted_thresholds_are_sklearns() -> None:
    X, _, weight = _data()
    for j in range(X.shape[1]):
        for max_bins in (255, 16):
            ours = _find_binning_thresholds(X[:, j].copy(), max_bins, weight.copy())
            theirs = binning._find_binning_thresholds(X[:, j].copy(), max_bins, weight.copy())
            assert np.array_equal(ours, theirs), (j, max_bins)


def test_fitted_model_is_sklearns() -> None:
    X, y, weight = _data(1)
    kwargs = {"max_iter": 30, "class_weight": "balanced", "random_state": 0}
    ours = HistGradientBoostingClassifier(**kwargs).fit(X, y, sample_weight=weight)
    theirs = SklearnHistGradientBoosting(**kwargs).fit(X, y, sample_weight=weight)
    assert np.array_equal(ours.predict_proba(X), theirs.predict_proba(X))
    for a, b in zip(
        ours._bin_mapper.bin_thresholds_, theirs._bin_mapper.bin_thresholds_, strict=True
    ):
        assert np.array_equal(a, b)
    # scikit-learn's function is back in place after the fit
    assert binning._find_binning_thresholds is not _find_binning_thresholds
    unweighted = HistGradientBoostingClassifier(**kwargs).fit(X, y)
    assert np.array_equal(
        unweighted.predict_proba(X),
        SklearnHistGradientBoosting(**kwargs).fit(X, y).predict_proba(X),
    )
