"""Grid search: reducer × method × k on standardised features, scored against labels.

Every reducer setting is fitted once and shared by all methods and k. Silhouette is
computed (Euclidean) in the space the clustering ran in: the reduced space for PCA/UMAP,
the standardised feature space for ``none``.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans, SpectralClustering
from sklearn.decomposition import PCA
from sklearn.metrics import (
    adjusted_mutual_info_score,
    adjusted_rand_score,
    normalized_mutual_info_score,
    silhouette_score,
)
from sklearn.mixture import GaussianMixture
from sklearn.preprocessing import StandardScaler

METHODS = ("kmeans", "gmm", "spectral")


@dataclass(frozen=True)
class ReducerSpec:
    """One reducer setting: kind in none|pca|umap, its parameters, and a stable name."""

    kind: str
    params: tuple[tuple[str, Any], ...] = ()

    @property
    def name(self) -> str:
        if self.kind == "none":
            return "none"
        p = dict(self.params)
        if self.kind == "pca":
            return f"pca{p['n_components']}"
        return f"umap{p['n_components']}_nn{p['n_neighbors']}_md{p['min_dist']}"


@dataclass(frozen=True)
class MethodSpec:
    """One clustering method setting (k is swept separately)."""

    method: str
    params: tuple[tuple[str, Any], ...] = ()

    @property
    def name(self) -> str:
        extra = "_".join(f"{k}{v}" for k, v in self.params)
        return f"{self.method}_{extra}" if extra else self.method


@dataclass
class GridResult:
    """One row per grid point plus the embeddings and labels needed for figures."""

    table: pd.DataFrame
    embeddings: dict[str, np.ndarray] = field(default_factory=dict)
    labels: dict[int, np.ndarray] = field(default_factory=dict)


def _product(options: Mapping[str, Any]) -> list[tuple[tuple[str, Any], ...]]:
    """All combinations of a {param: value-or-list} mapping, as sorted key/value tuples."""
    keys = sorted(options)
    values = [v if isinstance(v, list | tuple) else [v] for v in (options[k] for k in keys)]
    return [tuple(zip(keys, combo, strict=True)) for combo in itertools.product(*values)]


def reducer_specs(cfg: Mapping[str, Any]) -> list[ReducerSpec]:
    """Expand ``cluster.reducers`` ({none: {}, pca: {...}, umap: {...}}) into settings."""
    specs: list[ReducerSpec] = []
    for kind, options in cfg.items():
        if options is None:
            continue
        specs += [ReducerSpec(str(kind), p) for p in _product(dict(options))]
    return specs


def method_specs(cfg: Mapping[str, Any]) -> list[MethodSpec]:
    """Expand ``cluster.methods``; a method maps to one option dict or a list of them."""
    specs: list[MethodSpec] = []
    for method, options in cfg.items():
        variants = options if isinstance(options, list | tuple) else [options or {}]
        for variant in variants:
            specs += [MethodSpec(str(method), p) for p in _product(dict(variant))]
    return specs


def standardise(features: pd.DataFrame, drop: Iterable[str] = ()) -> np.ndarray:
    """Numeric feature columns (minus ``drop`` and constants), scaled to zero mean, unit var."""
    num = features.select_dtypes("number").drop(columns=[c for c in drop if c in features])
    num = num.loc[:, num.std(ddof=0) > 0]
    return StandardScaler().fit_transform(num.to_numpy(np.float64))


def reduce(x: np.ndarray, spec: ReducerSpec, seed: int) -> np.ndarray:
    """Fit the reducer on ``x`` and return the embedding (``x`` itself for ``none``)."""
    p = dict(spec.params)
    if spec.kind == "none":
        return x
    if spec.kind == "pca":
        n = int(min(p["n_components"], x.shape[1], x.shape[0]))
        return PCA(n_components=n, random_state=seed).fit_transform(x)
    if spec.kind == "umap":
        import umap

        nn = int(min(p["n_neighbors"], x.shape[0] - 1))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = umap.UMAP(
                n_components=int(p["n_components"]),
                n_neighbors=max(nn, 2),
                min_dist=float(p["min_dist"]),
                random_state=seed,
                n_jobs=1,
            )
            return model.fit_transform(x)
    raise ValueError(f"unknown reducer {spec.kind!r}")


def make_clusterer(
    spec: MethodSpec, k: int, n_samples: int, median_sq_dist: float, seed: int
) -> Any:
    """A scikit-learn estimator with fit_predict for this method setting and k.

    Spectral ``gamma`` is relative: the RBF uses gamma / median squared pairwise distance,
    so one setting means the same in every (reduced) space.
    """
    p = dict(spec.params)
    if spec.method == "kmeans":
        return KMeans(n_clusters=k, n_init=int(p.get("n_init", 10)), random_state=seed)
    if spec.method == "gmm":
        return GaussianMixture(
            n_components=k,
            covariance_type=str(p["covariance_type"]),
            n_init=int(p.get("n_init", 1)),
            reg_covar=1e-4,
            random_state=seed,
        )
    if spec.method == "spectral":
        affinity = str(p["affinity"])
        kw: dict[str, Any] = {
            "n_clusters": k,
            "affinity": affinity,
            "random_state": seed,
            "assign_labels": str(p.get("assign_labels", "kmeans")),
        }
        if affinity == "rbf":
            kw["gamma"] = float(p["gamma"]) / max(median_sq_dist, 1e-12)
        else:
            kw["n_neighbors"] = int(min(p["n_neighbors"], n_samples - 1))
        return SpectralClustering(**kw)
    raise ValueError(f"unknown method {spec.method!r}")


def score(x: np.ndarray, labels: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Silhouette in ``x`` (NaN for a single cluster), NMI / AMI / ARI against ``truth``."""
    n_clusters = len(np.unique(labels))
    sil = float(silhouette_score(x, labels)) if 1 < n_clusters < len(labels) else float("nan")
    return {
        "silhouette": sil,
        "nmi": float(normalized_mutual_info_score(truth, labels)),
        "ami": float(adjusted_mutual_info_score(truth, labels)),
        "ari": float(adjusted_rand_score(truth, labels)),
        "n_clusters_found": n_clusters,
    }


def _median_sq_dist(x: np.ndarray) -> float:
    from sklearn.metrics import pairwise_distances

    d = pairwise_distances(x, metric="sqeuclidean")
    return float(np.median(d[np.triu_indices_from(d, 1)])) if len(x) > 1 else 1.0


class SpectralFamily:
    """Spectral clustering for every k from one affinity matrix and one eigendecomposition.

    The same steps as scikit-learn's ``SpectralClustering(assign_labels="kmeans")``
    (affinity, ``spectral_embedding`` without dropping the first vector, k-means on the
    first k vectors), but the eigenvectors are computed once for the largest k instead of
    once per k, which is what makes the grid affordable.
    """

    def __init__(self, spec: MethodSpec, median_sq_dist: float, seed: int) -> None:
        self.params = dict(spec.params)
        self.median_sq_dist = median_sq_dist
        self.seed = seed
        self.maps_: np.ndarray | None = None

    def fit(self, x: np.ndarray, k_max: int) -> SpectralFamily:
        from sklearn.manifold import spectral_embedding
        from sklearn.metrics.pairwise import rbf_kernel
        from sklearn.neighbors import kneighbors_graph

        if self.params["affinity"] == "rbf":
            gamma = float(self.params["gamma"]) / max(self.median_sq_dist, 1e-12)
            affinity = rbf_kernel(x, gamma=gamma)
        else:
            nn = int(min(self.params["n_neighbors"], len(x) - 1))
            conn = kneighbors_graph(x, n_neighbors=nn, include_self=True)
            affinity = 0.5 * (conn + conn.T)
        self.maps_ = spectral_embedding(
            affinity, n_components=k_max, random_state=self.seed, drop_first=False
        )
        return self

    def labels(self, k: int) -> np.ndarray:
        assert self.maps_ is not None, "fit first"
        return KMeans(n_clusters=k, n_init=10, random_state=self.seed).fit_predict(
            self.maps_[:, :k]
        )


def run_grid(
    x: np.ndarray,
    truth: np.ndarray,
    reducers: list[ReducerSpec],
    methods: list[MethodSpec],
    ks: Iterable[int],
    seed: int,
    keep_labels: Callable[[dict[str, Any]], bool] | None = None,
    on_point: Callable[[dict[str, Any]], None] | None = None,
    n_threads: int | None = 1,
) -> GridResult:
    """Fit every reducer once, then every method × k on its embedding; score each point.

    ``ks`` larger than the number of samples − 1 are skipped. ``keep_labels(row)`` marks
    rows whose labels are kept (for figures); ``on_point(row)`` is called after each point
    (MLflow child runs). ``n_threads`` caps BLAS/OpenMP threads (None = library default).
    """
    from threadpoolctl import threadpool_limits

    n = len(x)
    ks = sorted({int(k) for k in ks if 2 <= int(k) <= n - 1})
    rows: list[dict[str, Any]] = []
    result = GridResult(table=pd.DataFrame())
    if not ks:
        return result
    with threadpool_limits(limits=n_threads):
        for red in reducers:
            emb = reduce(x, red, seed)
            result.embeddings[red.name] = emb
            msd = _median_sq_dist(emb)
            for meth in methods:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # e.g. "graph is not fully connected"
                    family = (
                        SpectralFamily(meth, msd, seed).fit(emb, max(ks))
                        if meth.method == "spectral"
                        else None
                    )
                for k in ks:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        labels = (
                            family.labels(k)
                            if family is not None
                            else make_clusterer(meth, k, n, msd, seed).fit_predict(emb)
                        )
                    row = {
                        "reducer": red.name,
                        "reducer_kind": red.kind,
                        **{f"reducer.{a}": b for a, b in red.params},
                        "method": meth.method,
                        "method_config": meth.name,
                        **{f"method.{a}": b for a, b in meth.params},
                        "k": k,
                        **score(emb, labels, truth),
                    }
                    row["point"] = len(rows)
                    rows.append(row)
                    if keep_labels is not None and keep_labels(row):
                        result.labels[row["point"]] = labels
                    if on_point is not None:
                        on_point(row)
    result.table = pd.DataFrame(rows)
    return result
