"""Which feature columns the genre clustering uses, chosen on sources it does not cluster.

The feature table serves the classifier too, and the classifier wants every column that
helps it. A clustering has no labels to tell it which differences matter, so here the
columns are chosen for it, in two steps that never look at a clustering score:

1. Candidates: the numeric columns that describe the music, i.e. without the file habits
   the classifier's robust set also leaves out (``features.ARTIFACT_FEATURES``: track
   layout, tempo map, velocities, beat grid, length, the absolute key). In the three
   clustered collections each genre is one source, so those habits tell the *sources*
   apart, and a clustering on them finds sources and calls it genre.
2. Stable across sources: on the files of the sources that are *not* clustered (other
   collections of the same genres; no clustered song is used), a candidate is kept when the
   genres differ on it more than the collections of one genre do: the share of its rank
   variance explained by genre is at least ``min_genre_over_source`` times the share
   explained by source within a genre (mean over genres with two or more sources). Ranks,
   so one extreme file does not decide.

Step 2 is off by default (``min_genre_over_source: null``): on the held-out sources themselves
the 25 columns it keeps find genre no better than the 89 candidates (benchmarks/
cluster_ceiling.py), so it is not worth the 64 columns it drops (docs/clustering.md). Where
no genre has two held-out sources (``data=small``, the music21 corpus) it cannot be measured
and every candidate is kept; the selection says which.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from midiml.represent.features import ARTIFACT_FEATURES

GROUPS = {"artifacts": ARTIFACT_FEATURES}
ID_COLUMNS = ("file_id", "genre")


@dataclass
class Selection:
    """The chosen columns, every candidate's shares and what the criterion was measured on."""

    columns: list[str]
    candidates: list[str]
    table: pd.DataFrame  # one row per candidate: genre_share, source_share, ratio, kept
    held_out_sources: list[str]
    measured: bool  # False: every candidate kept (see ``note``)
    note: str = ""  # why step 2 was not applied: "off" (no threshold) or "no held-out sources"


def candidates(features: pd.DataFrame, exclude: Iterable[str]) -> list[str]:
    """Numeric columns minus ``exclude`` (column names, or group names of ``GROUPS``)."""
    drop: set[str] = set(ID_COLUMNS)
    for name in exclude:
        drop |= set(GROUPS.get(str(name), (str(name),)))
    return [c for c in features.select_dtypes("number").columns if c not in drop]


def explained_share(values: np.ndarray, groups: np.ndarray) -> float:
    """Share of the variance of ``values`` explained by ``groups`` (eta squared; 0 if constant)."""
    x = pd.Series(np.asarray(values, float))
    total = float(((x - x.mean()) ** 2).sum())
    if total <= 0:
        return 0.0
    means = x.groupby(np.asarray(groups)).transform("mean")
    return float(((means - x.mean()) ** 2).sum() / total)


def source_stability(rows: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Per column, on ``rows`` (file features with ``genre`` and ``source``): ``genre_share``
    (rank variance explained by genre), ``source_share`` (by source, within each genre with
    two or more sources, averaged) and their ratio."""
    genre = rows["genre"].astype(str).to_numpy()
    source = rows["source"].astype(str).to_numpy()
    multi = [g for g in np.unique(genre) if len(np.unique(source[genre == g])) >= 2]
    out = []
    for col in columns:
        r = rows[col].rank(pct=True).to_numpy()
        g_share = explained_share(r, genre)
        s_share = float(
            np.mean([explained_share(r[genre == g], source[genre == g]) for g in multi])
        )
        ratio = g_share / s_share if s_share > 0 else (np.inf if g_share > 0 else 0.0)
        out.append(
            {"feature": col, "genre_share": g_share, "source_share": s_share, "ratio": ratio}
        )
    return pd.DataFrame(out)


def select_features(
    features: pd.DataFrame,
    files: pd.DataFrame,
    clustered: set[str],
    cfg: Mapping[str, Any],
) -> Selection:
    """Choose the clustering columns (module docstring) from every file's features.

    ``files``: the file table (``source`` of each ``file_id``; genre where it has none);
    ``clustered``: the file ids the grid will cluster (the rest are the held-out files the
    criterion is measured on).
    """
    cols = candidates(features, cfg.get("exclude", ()))
    min_ratio = cfg.get("min_genre_over_source")
    meta = files.drop_duplicates("file_id").set_index("file_id")
    source = meta["source"] if "source" in meta else meta["genre"]
    rows = features.assign(source=features["file_id"].map(source).astype(str).to_numpy())
    held = rows[~rows["file_id"].astype(str).isin(clustered)]
    genres = held.groupby("genre")["source"].nunique() if len(held) else pd.Series(dtype=int)
    measured = min_ratio is not None and held["genre"].nunique() >= 2 and bool((genres >= 2).any())
    if not measured:
        table = pd.DataFrame({"feature": cols, "kept": True})
        note = "off" if min_ratio is None else "no held-out sources"
        return Selection(cols, cols, table, sorted(held["source"].unique()), False, note)
    table = source_stability(held, cols)
    table["kept"] = table["ratio"] >= float(min_ratio)
    kept = table.loc[table["kept"], "feature"].tolist() or cols  # none kept: all candidates
    return Selection(kept, cols, table, sorted(held["source"].astype(str).unique()), True)
