"""A classifier kind added for tests/test_new_classifier.py: one module, nothing else in the
library knows it. Nearest class mean, probabilities a softmax of minus the distances."""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin


class CentroidClassifier(ClassifierMixin, BaseEstimator):
    """Nearest class centroid with probabilities (``temperature``: softmax scale); rows may
    be weighted (``sample_weight``), as the source weighting asks of every kind."""

    def __init__(self, temperature: float = 1.0) -> None:
        self.temperature = temperature

    def fit(self, X, y, sample_weight=None):  # noqa: N803 (scikit-learn's name)
        X, y = np.asarray(X, dtype=np.float64), np.asarray(y)
        w = np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight)
        self.classes_ = np.unique(y)
        self.centroids_ = np.vstack(
            [np.average(X[y == c], axis=0, weights=w[y == c]) for c in self.classes_]
        )
        return self

    def predict_proba(self, X):  # noqa: N803
        d = np.linalg.norm(np.asarray(X, dtype=np.float64)[:, None] - self.centroids_, axis=2)
        z = -d / float(self.temperature)
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        return p / p.sum(axis=1, keepdims=True)

    def predict(self, X):  # noqa: N803
        return self.classes_[self.predict_proba(X).argmax(axis=1)]
