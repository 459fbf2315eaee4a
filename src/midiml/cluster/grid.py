"""Grid search: reducer × method × k on standardised features, scored against labels.

Every reducer setting is fitted once and shared by all methods and k. Silhouette is
computed (Euclidean) in the space the clustering ran in: the reduced space for PCA/UMAP,
the standardised feature space for ``none``.
"""

from __future__ import annotations

import inspect
import itertools
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from hydra.utils import get_class, instantiate
from sklearn.cluster import KMeans, SpectralClustering
from sklearn.metrics import (
    adjusted_mutual_info_score,
    adjusted_rand_score,
    normalized_mutual_info_score,
    silhouette_score,
)
from sklearn.preprocessing import StandardScaler

METHODS = ("kmeans", "gmm", "spectral")


@dataclass(frozen=True)
class ReducerSpec:
    """One reducer setting: its config key (none|pca|umap...), parameters, the class that
    ``hydra.utils.instantiate`` builds (``_target_``; none: no reducer) and a stable name."""

    kind: str
    params: tuple[tuple[str, Any], ...] = ()
    target: str = ""

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
    """One clustering method setting (k is swept separately); ``target`` is its class."""

    method: str
    params: tuple[tuple[str, Any], ...] = ()
    target: str = ""

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


def targets_of(cfg: Mapping[str, Any]) -> dict[str, str]:
    """{key: _target_} of a reducers/methods config (smaller grids reuse the main ones')."""
    out = {}
    for key, options in cfg.items():
        first = options[0] if isinstance(options, list | tuple) and options else options
        if isinstance(first, Mapping) and first.get("_target_"):
            out[str(key)] = str(first["_target_"])
    return out


def reducer_specs(
    cfg: Mapping[str, Any], targets: Mapping[str, str] | None = None
) -> list[ReducerSpec]:
    """Expand ``cluster.reducers`` ({none: {}, pca: {...}, umap: {...}}) into settings;
    ``targets`` gives the class of a key whose options have no ``_target_``."""
    specs: list[ReducerSpec] = []
    for kind, options in cfg.items():
        if options is None:
            continue
        opts = dict(options)
        target = str(opts.pop("_target_", "") or (targets or {}).get(str(kind), ""))
        if not target and kind != "none":
            raise ValueError(f"cluster.reducers.{kind} needs a _target_ (the reducer's class)")
        specs += [ReducerSpec(str(kind), p, target) for p in _product(opts)]
    return specs


def method_specs(
    cfg: Mapping[str, Any], targets: Mapping[str, str] | None = None
) -> list[MethodSpec]:
    """Expand ``cluster.methods``; a method maps to one option dict or a list of them;
    ``targets`` gives the class of a method whose options have no ``_target_``."""
    specs: list[MethodSpec] = []
    for method, options in cfg.items():
        variants = options if isinstance(options, list | tuple) else [options or {}]
        for variant in variants:
            opts = dict(variant)
            target = str(opts.pop("_target_", "") or (targets or {}).get(str(method), ""))
            if not target:
                raise ValueError(f"cluster.methods.{method} needs a _target_ (the estimator)")
            specs += [MethodSpec(str(method), p, target) for p in _product(opts)]
    return specs


def standardise(features: pd.DataFrame, drop: Iterable[str] = ()) -> np.ndarray:
    """Numeric feature columns (minus ``drop`` and constants), scaled to zero mean, unit var."""
    num = features.select_dtypes("number").drop(columns=[c for c in drop if c in features])
    num = num.loc[:, num.std(ddof=0) > 0]
    return StandardScaler().fit_transform(num.to_numpy(np.float64))


def _accepts(cls: type, name: str) -> bool:
    return name in inspect.signature(cls).parameters


def reduce(x: np.ndarray, spec: ReducerSpec, seed: int) -> np.ndarray:
    """Fit the reducer built from ``spec`` on ``x``; return the embedding (``x`` for none).

    Sizes are capped by the data (components by the feature count and the number of files
    - 2, as UMAP's spectral start needs; neighbours by the number of files - 1), and every
    reducer gets the seed and one thread.
    """
    if not spec.target:
        return x
    kwargs = dict(spec.params)
    if "n_components" in kwargs:
        kwargs["n_components"] = max(
            int(min(kwargs["n_components"], x.shape[1], x.shape[0] - 2)), 1
        )
    if "n_neighbors" in kwargs:
        kwargs["n_neighbors"] = max(int(min(kwargs["n_neighbors"], x.shape[0] - 1)), 2)
    cls = get_class(spec.target)
    if _accepts(cls, "n_jobs"):
        kwargs["n_jobs"] = 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = instantiate({"_target_": spec.target, **kwargs, "random_state": seed})
        return model.fit_transform(x)


def make_clusterer(
    spec: MethodSpec, k: int, n_samples: int, median_sq_dist: float, seed: int
) -> Any:
    """The estimator of this method setting with ``k`` clusters, built from ``spec.target``.

    ``k`` goes to ``n_clusters`` (KMeans, spectral) or ``n_components`` (mixtures). A spectral
    ``gamma`` is relative: the RBF uses gamma / median squared pairwise distance, so one
    setting means the same in every (reduced) space; mixtures get a small ``reg_covar``.
    """
    cls = get_class(spec.target)
    kwargs = dict(spec.params)
    kwargs["n_clusters" if _accepts(cls, "n_clusters") else "n_components"] = k
    if "gamma" in kwargs:
        kwargs["gamma"] = float(kwargs["gamma"]) / max(median_sq_dist, 1e-12)
    if "n_neighbors" in kwargs:
        kwargs["n_neighbors"] = int(min(kwargs["n_neighbors"], n_samples - 1))
    if _accepts(cls, "reg_covar"):
        kwargs.setdefault("reg_covar", 1e-4)
    return instantiate({"_target_": spec.target, **kwargs, "random_state": seed})


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


def is_spectral(spec: MethodSpec) -> bool:
    """Spectral clustering runs as a :class:`SpectralFamily`: one eigendecomposition for all k."""
    return issubclass(get_class(spec.target), SpectralClustering)


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


def reducer_points(
    x: np.ndarray,
    truth: np.ndarray,
    red: ReducerSpec,
    methods: list[MethodSpec],
    ks: list[int],
    seed: int,
    n_threads: int | None = 1,
) -> tuple[np.ndarray, list[tuple[MethodSpec, int, np.ndarray, dict[str, float]]]]:
    """One reducer's share of the grid: its embedding and every method × k on it (labels and
    scores). Depends on nothing but its arguments, so any process computes the same values."""
    from threadpoolctl import threadpool_limits

    points = []
    with threadpool_limits(limits=n_threads):
        emb = reduce(x, red, seed)
        msd = _median_sq_dist(emb)
        for meth in methods:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # e.g. "graph is not fully connected"
                family = (
                    SpectralFamily(meth, msd, seed).fit(emb, max(ks)) if is_spectral(meth) else None
                )
            for k in ks:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    labels = (
                        family.labels(k)
                        if family is not None
                        else make_clusterer(meth, k, len(x), msd, seed).fit_predict(emb)
                    )
                points.append((meth, k, labels, score(emb, labels, truth)))
    return emb, points


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
    n_jobs: int = 1,
) -> GridResult:
    """Fit every reducer once, then every method × k on its embedding; score each point.

    ``ks`` larger than the number of samples − 1 are skipped. ``keep_labels(row)`` marks
    rows whose labels are kept (for figures); ``on_point(row)`` is called after each point
    (MLflow child runs). ``n_threads`` caps BLAS/OpenMP threads (None = library default).
    ``n_jobs`` reducers are worked on at a time (processes; the stage runs alone, and one
    process leaves the second core idle); the rows come back in the same order with the same
    values whatever ``n_jobs``.
    """
    from joblib import Parallel, delayed

    ks = sorted({int(k) for k in ks if 2 <= int(k) <= len(x) - 1})
    rows: list[dict[str, Any]] = []
    result = GridResult(table=pd.DataFrame())
    if not ks:
        return result
    done = Parallel(n_jobs=min(n_jobs, len(reducers)) or 1, return_as="generator")(
        delayed(reducer_points)(x, truth, red, methods, ks, seed, n_threads) for red in reducers
    )
    for red, (emb, points) in zip(reducers, done, strict=True):
        result.embeddings[red.name] = emb
        for meth, k, labels, scores in points:
            row = {
                "reducer": red.name,
                "reducer_kind": red.kind,
                **{f"reducer.{a}": b for a, b in red.params},
                "method": meth.method,
                "method_config": meth.name,
                **{f"method.{a}": b for a, b in meth.params},
                "k": k,
                **scores,
            }
            row["point"] = len(rows)
            rows.append(row)
            if keep_labels is not None and keep_labels(row):
                result.labels[row["point"]] = labels
            if on_point is not None:
                on_point(row)
    result.table = pd.DataFrame(rows)
    return result
