"""Training rows weighed by their source, so that a genre's big sources do not teach their
own habits as the genre's (``classifier.source_weighting``).

A fit's rows are its songs followed by their re-encoded copies (``pipelines.with_copies``);
``copies.row_songs`` names the song of each, ``source_weights`` weighs them, and ``fit_weighted``
hands the weights to the estimator that uses them (a pipeline's last step).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.ensemble import VotingClassifier
from sklearn.frozen import FrozenEstimator
from sklearn.pipeline import Pipeline

from midiml.classify.copies import row_songs


def song_sources(files: pd.DataFrame) -> pd.Series:
    """Each readable song's source (file_id -> source; its genre in a table without sources)."""
    ok = files[files["status"] == "ok"].set_index("file_id")
    return (ok["source"] if "source" in ok else ok["genre"]).astype(str)


def source_genres(files: pd.DataFrame) -> dict[str, str]:
    """The genre of each source of the readable songs (source -> genre)."""
    ok = files[files["status"] == "ok"]
    return ok.groupby(ok["source"].astype(str))["genre"].first().astype(str).to_dict()


def source_power(cfg: Any, task: str) -> float:
    """``classifier.source_weighting.power`` for ``task`` (0 when the task is not listed)."""
    weighting = cfg.get("source_weighting")
    if not weighting or task not in list(weighting.get("tasks") or []):
        return 0.0
    return float(weighting.power)


def source_weights(
    songs: list[str], y: np.ndarray, source: pd.Series, power: float
) -> np.ndarray | None:
    """A weight per training row (``songs``: the song of each row, ``y``: its label): the row
    count of its song's source (``source``: song -> source) to the power ``-power``, scaled
    so that each label keeps a total weight of one per row. None for ``power`` 0 (all alike).

    Why: the sources of a genre differ several-fold in size, and a big source teaches its own
    habits as the genre's. At power 1 every source of a label weighs the same; in between,
    a small source counts for more than its size without its few songs deciding alone."""
    if not power:
        return None
    frame = pd.DataFrame({"source": source.loc[songs].astype(str).to_numpy(), "y": y})
    weight = frame.groupby("source")["source"].transform("size").to_numpy(np.float64) ** -power
    by_label = pd.Series(weight).groupby(frame["y"].to_numpy())
    scale = by_label.transform("size").to_numpy() / by_label.transform("sum").to_numpy()
    return weight * scale


def fit_weighted(
    estimator: Any,
    X: Any,  # noqa: N803 (scikit-learn's name)
    y: np.ndarray,
    sample_weight: np.ndarray | None = None,
) -> Any:
    """``estimator.fit(X, y)`` with per-row weights when given; returns the fitted model (use
    it: a vote comes back as a new one). A Pipeline takes the weights as ``<last
    step>__sample_weight`` (its scaler or vectoriser is fitted unweighted); a soft vote's
    members, pipelines themselves, are fitted one by one, since ``VotingClassifier`` would
    hand them a plain ``sample_weight`` that a Pipeline refuses."""
    if sample_weight is None:
        return estimator.fit(X, y)
    if isinstance(estimator, Pipeline):
        key = f"{estimator.steps[-1][0]}__sample_weight"
        return estimator.fit(X, y, **{key: sample_weight})
    if isinstance(estimator, VotingClassifier):
        members = [
            (name, FrozenEstimator(fit_weighted(clone(member), X, y, sample_weight)))
            for name, member in estimator.estimators
        ]
        return clone(estimator).set_params(estimators=members).fit(X, y)
    return estimator.fit(X, y, sample_weight=sample_weight)


def training_weights(
    ids: list[str],
    labels: pd.Series,
    copies: pd.DataFrame | None,
    source: pd.Series | None,
    power: float,
) -> np.ndarray | None:
    """``source_weights`` of the rows ``with_copies`` builds from ``ids`` and ``copies``."""
    if source is None or not power:
        return None
    songs = row_songs(ids, copies)
    return source_weights(songs, labels.loc[songs].to_numpy(dtype=object), source, power)
