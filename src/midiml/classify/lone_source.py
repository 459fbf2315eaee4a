"""A prior for classes that the training data knows from one source only.

Lo-fi comes from one producer's loops. A model fitted on them is sure of that producer's
habits and unsure of anybody else's loops: other people's lo-fi gets a lo-fi probability of
0.2-0.6 where the source's own loops get 0.99. Held-out-source validation cannot measure that
class (there is no second source to leave out), but it can measure the cost of trusting it
more: how many songs of the *other* classes, from sources the model never saw, a larger
lo-fi prior would wrongly claim. So each lone-source class gets the largest factor on its
probability whose false-claim rate on held-out sources stays within ``max_false_rate``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


def apply_prior(
    proba: np.ndarray, classes: list[str], prior: dict[str, float] | None
) -> np.ndarray:
    """Multiply each class's probability by its factor in ``prior`` and renormalise rows."""
    if not prior:
        return proba
    factor = np.array([float(prior.get(c, 1.0)) for c in classes])
    scaled = proba * factor
    return scaled / np.maximum(scaled.sum(axis=1, keepdims=True), 1e-12)


def lone_source_classes(labels: pd.Series, source: pd.Series) -> list[str]:
    """Classes whose songs (``labels``: file_id -> class) all come from one source, when
    some other class has two or more (only then can false claims be measured)."""
    n = source.loc[labels.index].astype(str).groupby(labels.astype(str)).nunique()
    return sorted(n[n == 1].index) if (n >= 2).any() else []


def choose_prior(
    predictions: dict[str, tuple[np.ndarray, np.ndarray]],
    classes: list[str],
    lone: list[str],
    factors: list[float],
    max_false_rate: float,
) -> dict[str, Any]:
    """The largest factor in ``factors`` per lone class whose share of held-out-source songs
    (``predictions``: source -> (probabilities in ``classes`` order, true labels)) wrongly
    called that class stays within ``max_false_rate``.

    Returns ``{"prior": {class: factor}, "false_rate": {class: rate at that factor},
    "curve": {class: {factor: rate}}, "max_false_rate": ..., "n_songs": ...}``; a class keeps
    factor 1 when no factor qualifies.
    """
    if not predictions or not lone:
        return {"prior": {}, "false_rate": {}, "curve": {}, "max_false_rate": max_false_rate}
    proba = np.vstack([p for p, _ in predictions.values()])
    y = np.concatenate([t for _, t in predictions.values()])
    names = np.asarray(classes, dtype=object)
    prior: dict[str, float] = {}
    rate: dict[str, float] = {}
    curve: dict[str, dict[str, float]] = {}
    for c in lone:
        others = y != c
        curve[c] = {}
        for f in sorted({1.0, *map(float, factors)}):
            pred = names[apply_prior(proba, classes, {c: f}).argmax(axis=1)]
            curve[c][f"{f:g}"] = float((pred[others] == c).mean()) if others.any() else 0.0
        # the rate only grows with the factor (a larger factor claims a superset of songs)
        ok = [float(f) for f, r in curve[c].items() if r <= max_false_rate]
        prior[c] = max(ok, default=1.0)
        rate[c] = curve[c][f"{prior[c]:g}"]
    return {
        "prior": prior,
        "false_rate": rate,
        "curve": curve,
        "max_false_rate": float(max_false_rate),
        "n_songs": len(y),
    }
