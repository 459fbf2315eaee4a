"""The two grid searches of the cluster stage: genres on all files, composers on one genre.

Selection is by the grid's own scores (silhouette or NMI against the label), as the seed
study did; composer results also carry chance-level NMI so a high k is read honestly.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import normalized_mutual_info_score

from midiml.cluster.grid import (
    METHODS,
    GridResult,
    ReducerSpec,
    method_specs,
    reducer_specs,
    run_grid,
    standardise,
    targets_of,
)

SUMMARY_KEYS = ("method", "reducer", "k", "silhouette", "nmi", "ari")


@dataclass
class Search:
    """A finished grid search: its results plus the labels it was scored against."""

    name: str
    grid: GridResult
    truth: np.ndarray
    x: np.ndarray


def _as_dict(cfg: Any) -> dict[str, Any]:
    from omegaconf import DictConfig, OmegaConf

    if isinstance(cfg, DictConfig):
        return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    return dict(cfg)


def summary(row: Mapping[str, Any]) -> dict[str, Any]:
    """The metrics-file view of a grid point: method, reducer, k, silhouette, nmi, ari."""
    out = {k: row[k] for k in SUMMARY_KEYS}
    out["method"] = str(row["method_config"])
    out["k"] = int(out["k"])
    for m in ("silhouette", "nmi", "ari"):
        v = float(out[m])
        out[m] = round(v, 4) if np.isfinite(v) else None
    return out


def grid_for(c: Mapping[str, Any], n_files: int) -> tuple[dict[str, Any], list[int]]:
    """(reducers, k list) for ``n_files``: the ``small`` grid below its file count."""
    small = c.get("small") or {}
    if small and n_files < int(small.get("below_files", 0)):
        return small.get("reducers", c["reducers"]), list(small.get("k", c["k"]))
    return c["reducers"], list(c["k"])


def genre_search(
    features: pd.DataFrame,
    cfg: Any,
    seed: int,
    on_point: Callable[[dict[str, Any]], None] | None = None,
    columns: list[str] | None = None,
    n_jobs: int = 1,
) -> Search:
    """Cluster every file on ``columns`` (None: every numeric one); score against genre;
    ``n_jobs`` reducers at a time (:func:`run_grid`)."""
    c = _as_dict(cfg)
    x = standardise(features[columns] if columns else features, c.get("drop_features", []))
    truth = features["genre"].astype(str).to_numpy()
    reducers_cfg, ks = grid_for(c, len(features))
    ks = sorted(set(ks) | {len(np.unique(truth))})  # always try k = number of genres
    reducers = reducer_specs(reducers_cfg, targets_of(c["reducers"]))
    grid = run_grid(
        x,
        truth,
        reducers,
        method_specs(c["methods"]),
        ks,
        seed,
        keep_labels=lambda row: True,
        on_point=on_point,
        n_threads=c.get("n_threads", 1),
        n_jobs=n_jobs,
    )
    return Search("genre", grid, truth, x)


def feature_set_check(
    features: pd.DataFrame, sets: Mapping[str, list[str]], cfg: Any, seed: int, n_jobs: int = 1
) -> dict[str, Any]:
    """What the genre structure at k = number of genres is made of: per named column set,
    the best NMI of a small grid (``cfg.compare_feature_sets``) at that k, overall and among
    points with silhouette >= ``min_silhouette``. Read only by the report."""
    c = _as_dict(cfg)
    check = c["compare_feature_sets"]
    truth = features["genre"].astype(str).to_numpy()
    k = int(len(np.unique(truth)))
    min_sil = float(c.get("min_silhouette", 0.5))
    out: dict[str, Any] = {}
    for name, cols in sets.items():
        if not cols:
            continue
        grid = run_grid(
            standardise(features[cols]),
            truth,
            reducer_specs(check["reducers"], targets_of(c["reducers"])),
            method_specs(check["methods"], targets_of(c["methods"])),
            [k],
            seed,
            n_threads=c.get("n_threads", 1),
            n_jobs=n_jobs,
        )
        t = grid.table
        if t.empty:
            continue
        ok = t[t["silhouette"] >= min_sil]
        best = t.sort_values(["nmi", "silhouette"], ascending=False).iloc[0]
        row = ok.sort_values(["nmi", "silhouette"], ascending=False).iloc[0] if len(ok) else None
        out[name] = {
            "n_features": len(cols),
            "k": k,
            "best_nmi": summary(best),
            "best_nmi_well_separated": None if row is None else summary(row),
        }
    return out


def seed_row(table: pd.DataFrame, seed_cfg: Mapping[str, Any]) -> pd.Series | None:
    """The grid point matching the seed study's configuration (None if not in the grid)."""
    red = ReducerSpec(
        str(seed_cfg["reducer"]["kind"]),
        tuple(sorted((k, v) for k, v in seed_cfg["reducer"].items() if k != "kind")),
    )
    hit = table[
        (table["reducer"] == red.name)
        & (table["method"] == seed_cfg["method"])
        & (table["k"] == int(seed_cfg["k"]))
    ]
    return hit.iloc[0] if len(hit) else None


def genre_metrics(search: Search, cfg: Any) -> dict[str, Any]:
    """``best_by_silhouette``, ``best_by_nmi``, ``best_by_nmi_well_separated`` (silhouette at
    least ``min_silhouette``) and the seed's ``umap3_kmeans3`` point."""
    t = search.grid.table
    best_sil = t.loc[t["silhouette"].fillna(-2).idxmax()]
    best_nmi = t.loc[t.sort_values(["nmi", "silhouette"], ascending=False).index[0]]
    out = {"best_by_silhouette": summary(best_sil), "best_by_nmi": summary(best_nmi)}
    # The clustering target reads NMI and silhouette together: best NMI among well-separated points.
    min_sil = float(_as_dict(cfg).get("min_silhouette", 0.5))
    ok = t[t["silhouette"] >= min_sil]
    if len(ok):
        row = ok.sort_values(["nmi", "silhouette"], ascending=False).iloc[0]
        out["best_by_nmi_well_separated"] = {**summary(row), "min_silhouette": min_sil}
    row = seed_row(t, _as_dict(cfg)["seed_config"])
    if row is not None:
        out["umap3_kmeans3"] = summary(row)
    return out


def composer_files(features: pd.DataFrame, files: pd.DataFrame, genre: str | None) -> pd.DataFrame:
    """Feature rows of ``genre`` files that have a composer (drops e.g. 'Christmas').

    ``genre`` None: the genre with the most composer-labelled files (any collection).
    """
    meta = files[["file_id", "composer"]].drop_duplicates("file_id")
    merged = features.merge(meta, on="file_id", how="left")
    if genre is None:
        labelled = merged.loc[merged["composer"].notna(), "genre"].astype(str)
        counts = labelled.value_counts()
        genre = str(counts.index[0]) if len(counts) else ""
    keep = (merged["genre"] == genre) & merged["composer"].notna()
    return merged[keep].reset_index(drop=True)


def chance_nmi(truth: np.ndarray, k: int, draws: int, seed: int) -> float:
    """Mean NMI of uniformly random k-labelings: what NMI reads when nothing is learned."""
    rng = np.random.default_rng(seed)
    vals = [
        normalized_mutual_info_score(truth, rng.integers(0, k, len(truth))) for _ in range(draws)
    ]
    return float(np.mean(vals)) if vals else float("nan")


def composer_search(
    features: pd.DataFrame,
    files: pd.DataFrame,
    cfg: Any,
    seed: int,
    on_point: Callable[[dict[str, Any]], None] | None = None,
    columns: list[str] | None = None,
    n_jobs: int = 1,
) -> tuple[Search | None, dict[str, Any]]:
    """Cluster one genre's composer-labelled files at k = k_fixed and k = composers, on
    ``columns`` (None: every numeric one)."""
    c = _as_dict(cfg)["composer"]
    rows = composer_files(features, files, None if c.get("genre") is None else str(c["genre"]))
    if len(rows) < 3:
        return None, {"n_files": len(rows), "n_composers": 0}
    truth = rows["composer"].astype(str).to_numpy()
    n_comp = int(len(np.unique(truth)))
    table = rows[columns] if columns else rows.drop(columns=["composer"])
    x = standardise(table, _as_dict(cfg).get("drop_features", []))
    k_fixed = int(c["k_fixed"])
    reducers_cfg = c["reducers"]
    small = _as_dict(cfg).get("small") or {}
    if small and len(rows) < int(small.get("below_files", 0)):
        reducers_cfg = small.get("reducers", reducers_cfg)
    grid = run_grid(
        x,
        truth,
        reducer_specs(reducers_cfg, targets_of(_as_dict(cfg).get("reducers", {}))),
        method_specs(c["methods"], targets_of(_as_dict(cfg).get("methods", {}))),
        [k_fixed, n_comp],
        seed,
        on_point=on_point,
        n_threads=_as_dict(cfg).get("n_threads", 1),
        n_jobs=n_jobs,
    )
    info = {"n_files": int(len(rows)), "n_composers": n_comp, "k_fixed": k_fixed, "chance_nmi": {}}
    for k in sorted({k_fixed, n_comp}):
        if 2 <= k <= len(rows) - 1:
            info["chance_nmi"][k] = round(chance_nmi(truth, k, int(c["chance_draws"]), seed), 4)
    return Search("composer", grid, truth, x), info


def composer_metrics(search: Search | None, info: Mapping[str, Any]) -> dict[str, Any]:
    """Per method: best NMI over its settings at k = k_fixed (``nmi_at_k_fixed``) and at
    k = number of composers (``nmi_at_k_composers``)."""
    out: dict[str, Any] = {}
    for method in METHODS:
        out[method] = {"nmi_at_k_fixed": None, "nmi_at_k_composers": None}
        if search is None:
            continue
        t = search.grid.table
        t = t[t["method"] == method]
        ks = (("nmi_at_k_fixed", info["k_fixed"]), ("nmi_at_k_composers", info["n_composers"]))
        for key, k in ks:
            hit = t[t["k"] == k]
            if len(hit):
                out[method][key] = round(float(hit["nmi"].max()), 4)
    return out


def assignments(search: Search, file_ids: Any) -> pd.DataFrame:
    """Each file's cluster under the search's best grid points (by NMI, by silhouette).

    The cluster stage's DVC-cached output: one row per file, ``file_id``, the label it was
    scored against and ``cluster_best_by_nmi`` / ``cluster_best_by_silhouette``.
    """
    t = search.grid.table
    points = {
        "best_by_nmi": t.sort_values(["nmi", "silhouette"], ascending=False).iloc[0]["point"],
        "best_by_silhouette": t.loc[t["silhouette"].fillna(-2).idxmax(), "point"],
    }
    out = pd.DataFrame(
        {"file_id": pd.Series(file_ids).astype(str).to_numpy(), search.name: search.truth}
    )
    for key, point in points.items():
        labels = search.grid.labels.get(int(point))
        if labels is not None:
            out[f"cluster_{key}"] = np.asarray(labels, dtype=np.int32)
    return out
