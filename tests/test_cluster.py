"""Clustering grid: spec expansion, scoring on known blobs, seeding, metrics keys, dvc wiring."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.cluster import SpectralClustering
from sklearn.datasets import make_blobs
from sklearn.metrics import normalized_mutual_info_score

from midiml.cluster.grid import (
    MethodSpec,
    ReducerSpec,
    SpectralFamily,
    method_specs,
    reducer_specs,
    run_grid,
    standardise,
    targets_of,
)
from midiml.cluster.search import (
    assignments,
    chance_nmi,
    composer_files,
    composer_metrics,
    composer_search,
    genre_metrics,
    genre_search,
    grid_for,
)
from midiml.config import compose_defaults
from midiml.report.clustering import curves, render_markdown
from tests.conftest import REPO

CLUSTER = compose_defaults(conf_dir=str(REPO / "conf"))["cluster"]
RT = targets_of(CLUSTER["reducers"])  # the classes conf/cluster builds, e.g. umap.UMAP
MT = targets_of(CLUSTER["methods"])
METHODS_CFG = {
    "kmeans": {"_target_": "sklearn.cluster.KMeans", "n_init": 4},
    "gmm": {"_target_": "sklearn.mixture.GaussianMixture", "covariance_type": ["full", "diag"]},
    "spectral": [
        {"_target_": "sklearn.cluster.SpectralClustering", "affinity": "rbf", "gamma": [1.0]},
        {
            "_target_": "sklearn.cluster.SpectralClustering",
            "affinity": "nearest_neighbors",
            "n_neighbors": [8],
        },
    ],
}


@pytest.fixture(scope="module")
def blobs() -> tuple[np.ndarray, np.ndarray]:
    x, y = make_blobs(n_samples=60, centers=3, n_features=5, cluster_std=0.6, random_state=1)
    return x, np.array(["a", "b", "c"])[y]


def _feature_frame(x: np.ndarray, y: np.ndarray) -> pd.DataFrame:
    df = pd.DataFrame(x, columns=[f"f{i}" for i in range(x.shape[1])])
    df.insert(0, "genre", y)
    df.insert(0, "file_id", [f"id{i}" for i in range(len(df))])
    df["const"] = 1.0  # constant columns are dropped before scaling
    return df


def test_specs_expand_every_combination():
    reducers = reducer_specs(
        {
            "none": {},
            "pca": {"n_components": [2, 3]},
            "umap": {"n_components": [2, 3], "n_neighbors": [5, 10], "min_dist": [0.1]},
        },
        RT,
    )
    assert [r.name for r in reducers][:3] == ["none", "pca2", "pca3"]
    assert len(reducers) == 1 + 2 + 4 and "umap3_nn10_md0.1" in {r.name for r in reducers}
    methods = method_specs(METHODS_CFG, MT)
    assert [m.name for m in methods] == [
        "kmeans_n_init4",
        "gmm_covariance_typefull",
        "gmm_covariance_typediag",
        "spectral_affinityrbf_gamma1.0",
        "spectral_affinitynearest_neighbors_n_neighbors8",
    ]


def test_grid_recovers_separated_blobs(blobs):
    x, y = blobs
    seen = []
    res = run_grid(
        x,
        y,
        reducer_specs({"none": {}, "pca": {"n_components": [2]}}, RT),
        method_specs(METHODS_CFG, MT),
        [2, 3, 4, 100],
        seed=0,
        on_point=seen.append,
    )
    t = res.table
    assert sorted(t["k"].unique()) == [2, 3, 4]  # k > n - 1 is skipped
    assert len(t) == len(seen) == 2 * 5 * 3
    k3 = t[t["k"] == 3]
    assert (k3["nmi"] > 0.99).all() and (k3["ari"] > 0.99).all()
    assert (k3["silhouette"] > 0.5).all()
    # silhouette is computed in the clustering's own space: pca2 differs from none
    assert set(res.embeddings) == {"none", "pca2"} and res.embeddings["pca2"].shape == (60, 2)


@pytest.mark.parametrize(
    "affinity",
    [
        (("affinity", "rbf"), ("gamma", 1.0)),
        (("affinity", "nearest_neighbors"), ("n_neighbors", 25)),
    ],
)
def test_spectral_family_matches_sklearn(blobs, affinity):
    """One eigendecomposition for all k gives sklearn's SpectralClustering labels.

    (The affinity graph is connected here; on a disconnected graph with fewer clusters than
    components both are arbitrary.)
    """
    x, _ = blobs
    d = ((x[:, None] - x[None]) ** 2).sum(-1)
    msd = float(np.median(d[np.triu_indices(len(x), 1)]))
    fam = SpectralFamily(MethodSpec("spectral", affinity), median_sq_dist=msd, seed=0)
    fam.fit(x, k_max=4)
    kw = dict(affinity)
    if kw["affinity"] == "rbf":
        kw["gamma"] = kw["gamma"] / msd
    for k in (2, 3, 4):
        ref = SpectralClustering(n_clusters=k, random_state=0, **kw).fit_predict(x)
        assert normalized_mutual_info_score(ref, fam.labels(k)) > 0.95


def test_seeded_runs_repeat_exactly_with_umap(blobs):
    x, y = blobs
    reducers = [
        ReducerSpec(
            "umap", (("min_dist", 0.1), ("n_components", 2), ("n_neighbors", 10)), RT["umap"]
        )
    ]
    methods = method_specs(
        {"kmeans": {"n_init": 4}, "spectral": {"affinity": "rbf", "gamma": 1.0}}, MT
    )
    a = run_grid(x, y, reducers, methods, [3], seed=7).table
    b = run_grid(x, y, reducers, methods, [3], seed=7).table
    pd.testing.assert_frame_equal(a, b)
    assert (a["nmi"] > 0.9).all()


def test_grid_in_two_processes_equals_one(blobs):
    """Reducers worked on in two processes give the same rows, labels and embeddings, in
    the same order, and the per-point callback sees the same rows."""
    x, y = blobs
    reducers = reducer_specs(
        {
            "none": {},
            "pca": {"n_components": [2, 3]},
            "umap": {"n_components": [2], "n_neighbors": [10], "min_dist": [0.1]},
        },
        RT,
    )
    methods = method_specs(METHODS_CFG, MT)
    seen: dict[int, list] = {1: [], 2: []}
    one, two = (
        run_grid(x, y, reducers, methods, [2, 3], 7, lambda r: True, seen[n].append, n_jobs=n)
        for n in (1, 2)
    )
    pd.testing.assert_frame_equal(one.table, two.table)
    assert seen[1] == seen[2] and len(seen[1]) == len(one.table)
    assert all(np.array_equal(one.labels[p], two.labels[p]) for p in one.labels)
    assert all(np.array_equal(one.embeddings[r], two.embeddings[r]) for r in one.embeddings)


def test_genre_metrics_have_exactly_the_issue_keys(blobs):
    x, y = blobs
    cfg = {
        "drop_features": ["const"],
        "k": [2, 3],
        "n_threads": 1,
        "reducers": {
            "none": {},
            "umap": {
                "_target_": "umap.UMAP",
                "n_components": [3],
                "n_neighbors": [10],
                "min_dist": [0.1],
            },
        },
        "methods": METHODS_CFG,
        "seed_config": {
            "reducer": {"kind": "umap", "n_components": 3, "n_neighbors": 10, "min_dist": 0.1},
            "method": "kmeans",
            "k": 3,
        },
    }
    search = genre_search(_feature_frame(x, y), cfg, seed=0)
    assert search.x.shape == (60, 5)  # the constant column was dropped
    m = genre_metrics(search, cfg)
    assert set(m) == {
        "best_by_silhouette",
        "best_by_nmi",
        "umap3_kmeans3",
        "best_by_nmi_well_separated",
    }
    for key, r in m.items():
        extra = {"min_silhouette"} if key == "best_by_nmi_well_separated" else set()
        assert set(r) == {"method", "reducer", "k", "silhouette", "nmi", "ari"} | extra
    sep = m["best_by_nmi_well_separated"]
    assert sep["silhouette"] >= 0.5 and sep["nmi"] <= m["best_by_nmi"]["nmi"]
    assert m["umap3_kmeans3"]["reducer"] == "umap3_nn10_md0.1"
    assert m["umap3_kmeans3"]["k"] == 3 and m["best_by_nmi"]["nmi"] > 0.99
    c = curves(search.grid.table)
    assert list(c["k"]) == [2, 3] and "spectral_silhouette" in c
    md = render_markdown(search, m, None, {}, {"n_files": 0}, {"vs_k": "figures/x.png"})
    assert "0.515" in md and "seed" in md and "![" in md


def test_small_grid_replaces_reducers_and_k():
    c = {
        "k": [2, 8],
        "reducers": {"none": {}, "pca": {"n_components": [5, 10]}},
        "small": {"below_files": 50, "k": [2, 3], "reducers": {"none": {}}},
    }
    assert grid_for(c, 49) == ({"none": {}}, [2, 3])
    assert grid_for(c, 50) == (c["reducers"], [2, 8])


def test_composer_search_uses_composer_files_only(blobs):
    x, _ = blobs
    feats = _feature_frame(x, np.array(["classical"] * 50 + ["lofi"] * 10))
    composers = np.array(["A", "B", "C"] * 16 + [None, None] + [None] * 10, dtype=object)
    files = pd.DataFrame({"file_id": feats["file_id"], "composer": composers})
    rows = composer_files(feats, files, "classical")
    assert len(rows) == 48 and rows["composer"].notna().all()
    cfg = {
        "drop_features": [],
        "n_threads": 1,
        "composer": {
            "genre": "classical",
            "k_fixed": 6,
            "chance_draws": 5,
            "reducers": {"none": {}},
            "methods": METHODS_CFG,
        },
    }
    search, info = composer_search(feats, files, cfg, seed=0)
    assert info["n_composers"] == 3 and info["n_files"] == 48
    assert set(search.grid.table["k"]) == {3, 6}
    m = composer_metrics(search, info)
    assert set(m) == {"kmeans", "gmm", "spectral"}
    assert all(set(v) == {"nmi_at_k_fixed", "nmi_at_k_composers"} for v in m.values())
    assert all(v["nmi_at_k_composers"] is not None for v in m.values())


def test_chance_nmi_grows_with_k():
    truth = np.repeat(np.arange(10), 20)
    assert chance_nmi(truth, 2, 10, 0) < chance_nmi(truth, 10, 10, 0) < chance_nmi(truth, 40, 10, 0)


def test_standardise_drops_named_and_constant_columns(blobs):
    x, y = blobs
    z = standardise(_feature_frame(x, y), drop=["f0"])
    assert z.shape == (60, 4)
    assert np.allclose(z.mean(axis=0), 0) and np.allclose(z.std(axis=0), 1)


def test_dvc_params_isolate_cluster_from_features():
    """`dvc exp run -S cluster.x=...` must not rerun `features` (and vice versa)."""
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    # cpu_threads: how many grid reducers run at a time, not what they compute
    assert sorted(stages["cluster"]["params"]) == ["cluster", "cpu_threads", "seed"]
    assert all(
        str(p).startswith("features.") or p == "cpu_threads" for p in stages["features"]["params"]
    )
    assert "reports/clustering.md" in stages["report"]["deps"]
    outs = [next(iter(o)) if isinstance(o, dict) else o for o in stages["cluster"]["outs"]]
    assert "reports/clustering.md" in outs


def test_assignments_give_every_file_its_best_cluster(blobs):
    """The cluster stage's DVC-cached output: one row per file, labels of the best points."""
    x, y = blobs
    cfg = {"k": [2, 3], "n_threads": 1, "reducers": {"none": {}}, "methods": METHODS_CFG}
    frame = _feature_frame(x, y)
    search = genre_search(frame, cfg, seed=0)
    table = assignments(search, frame["file_id"])
    assert list(table.columns) == [
        "file_id",
        "genre",
        "cluster_best_by_nmi",
        "cluster_best_by_silhouette",
    ]
    assert table["file_id"].tolist() == frame["file_id"].tolist()
    assert table["genre"].tolist() == list(y.astype(str))
    # three well-separated blobs: the best-by-NMI clusters are the blobs themselves
    assert normalized_mutual_info_score(table["genre"], table["cluster_best_by_nmi"]) > 0.99


@pytest.mark.parametrize("n_files", [3, 4, 5])
def test_reducers_fit_a_handful_of_files(n_files):
    """A composer search on the small data can have 3-5 files: UMAP's spectral start needs
    fewer components than files - 1, so the components are capped, not an error raised."""
    from midiml.cluster.grid import ReducerSpec, reduce

    x = np.random.default_rng(0).normal(size=(n_files, 8))
    umap = ReducerSpec(
        "umap", (("n_components", 3), ("n_neighbors", 10), ("min_dist", 0.0)), "umap.UMAP"
    )
    pca = ReducerSpec("pca", (("n_components", 5),), "sklearn.decomposition.PCA")
    for spec in (umap, pca):
        emb = reduce(x, spec, seed=0)
        assert emb.shape == (n_files, max(min(3 if spec is umap else 5, n_files - 2), 1))
        assert np.isfinite(emb).all()
