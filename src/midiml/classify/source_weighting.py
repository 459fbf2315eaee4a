"""Training rows weighed by their source, so that a genre's big sources do not teach their
own habits as the genre's (``classifier.source_weighting``).

A fit's rows are its songs followed by their re-encoded copies (``pipelines.with_copies``);
``copies.row_songs`` names the song of each, ``source_weights`` weighs them, and ``fit_weighted``
hands the weights on by scikit-learn's metadata routing to the classifiers that use them.
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
import pandas as pd
import sklearn
from sklearn.base import BaseEstimator, is_classifier

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
    """``estimator.fit(X, y)`` with per-row weights when given, handed on by scikit-learn's
    metadata routing: every classifier inside asks for them, every other step (a scaler, a
    vectoriser) is fitted unweighted (``request_weights``). Returns the fitted estimator."""
    if sample_weight is None:
        return estimator.fit(X, y)
    with sklearn.config_context(enable_metadata_routing=True):
        request_weights(estimator)
        return estimator.fit(X, y, sample_weight=sample_weight)


def request_weights(estimator: Any) -> Any:
    """Set the fit request for ``sample_weight`` on ``estimator`` and everything inside it
    that takes one: classifiers use the weights, transformers do not (call it with metadata
    routing on)."""
    parts = [estimator, *estimator.get_params(deep=True).values()]
    for part in parts:
        fit = getattr(part, "fit", None)
        if not isinstance(part, BaseEstimator) or fit is None:
            continue
        if "sample_weight" in inspect.signature(fit).parameters and hasattr(
            part, "set_fit_request"
        ):
            part.set_fit_request(sample_weight=is_classifier(part))
    return estimator


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
