"""Histogram gradient boosting whose fit with sample weights bins its features faster, with
the very same bins.

scikit-learn (1.9) finds the bin edges of a weighted fit with one ``_weighted_percentile``
call per edge: 254 calls per feature, each sorting the column again and summing its weights
again. With rows weighted by source (``classifier.source_weighting``) that binning took
more CPU than the boosting itself (about 10 s of a 13 s fit of the genre task). Here each
column is sorted and summed once and all edges are looked up together; the arithmetic per
edge is scikit-learn's own (same sort, same cumulative sum, same comparisons), so the edges,
and therefore the fitted model, are identical (``tests/test_boosting.py`` compares them).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier as _SklearnHistGradientBoosting
from sklearn.ensemble._hist_gradient_boosting import binning
from sklearn.ensemble._hist_gradient_boosting.common import ALMOST_INF, X_DTYPE

_sklearn_thresholds = binning._find_binning_thresholds
_patch_lock = threading.Lock()
_patched = 0  # fits inside ``_fast_weighted_binning`` now (threads may fit at once)


def weighted_edges(sorted_col: np.ndarray, weight: np.ndarray, ranks: np.ndarray) -> np.ndarray:
    """scikit-learn's ``_weighted_percentile(sorted_col, weight, rank, average=True)`` for
    every rank in ``ranks`` at once ("averaged_inverted_cdf"); ``weight`` > 0, no NaN (as
    ``_find_binning_thresholds`` leaves them)."""
    column = sorted_col.reshape(-1, 1)
    order = np.argsort(column, axis=0)[:, 0]  # scikit-learn's (unstable) argsort, same order
    cdf = np.cumsum(weight[order])
    wanted = ranks / 100 * cdf[-1]
    zero = wanted == 0
    wanted[zero] = np.nextafter(wanted[zero], wanted[zero] + 1)
    last = len(order) - 1
    at = np.clip(np.searchsorted(cdf, wanted), 0, last)
    above = (cdf[at] - wanted) > np.finfo(np.float64).eps
    here, after = sorted_col[order[at]], sorted_col[order[np.clip(at + 1, 0, last)]]
    return np.where(above, here, (here + after) / 2)


def _find_binning_thresholds(
    col_data: np.ndarray, max_bins: int, sample_weight: np.ndarray | None = None
) -> np.ndarray:
    """``binning._find_binning_thresholds`` with the weighted edges found by
    ``weighted_edges``; every other case is scikit-learn's own function."""
    if sample_weight is None:
        return _sklearn_thresholds(col_data, max_bins, sample_weight)
    missing = np.isnan(col_data)
    if missing.any():
        col_data, sample_weight = col_data[~missing], sample_weight[~missing]
    kept = sample_weight != 0
    col_data, sample_weight = col_data[kept], sample_weight[kept]
    order = np.argsort(col_data)
    col_data, sample_weight = col_data[order], sample_weight[order]
    distinct = np.unique(col_data).astype(X_DTYPE)
    if len(distinct) <= max_bins:  # midpoints of the distinct values: nothing to speed up
        return _sklearn_thresholds(col_data, max_bins, sample_weight)
    ranks = np.linspace(0, 100, num=max_bins + 1)[1:-1]
    edges = weighted_edges(col_data, sample_weight, ranks)
    edges = np.unique(edges) if np.unique(edges).shape[0] != edges.shape[0] else edges
    np.clip(edges, a_min=None, a_max=ALMOST_INF, out=edges)
    return edges


@contextlib.contextmanager
def _fast_weighted_binning() -> Iterator[None]:
    """``_find_binning_thresholds`` above in scikit-learn's binning module while any fit is
    inside (it gives the same edges, so another fit meanwhile is not changed by it)."""
    global _patched
    with _patch_lock:
        _patched += 1
        binning._find_binning_thresholds = _find_binning_thresholds
    try:
        yield
    finally:
        with _patch_lock:
            _patched -= 1
            if not _patched:
                binning._find_binning_thresholds = _sklearn_thresholds


class HistGradientBoostingClassifier(_SklearnHistGradientBoosting):
    """scikit-learn's ``HistGradientBoostingClassifier``, same parameters and same fitted
    model; a fit with ``sample_weight`` bins its features once per column instead of once
    per bin edge (module docstring)."""

    def fit(self, X, y, sample_weight=None):  # noqa: ANN001, ANN201, N803  (sklearn's API)
        if sample_weight is None:
            return super().fit(X, y, sample_weight=None)
        with _fast_weighted_binning():
            return super().fit(X, y, sample_weight=sample_weight)
