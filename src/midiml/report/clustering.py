"""reports/clustering.md and its figures: the grid search, best points, composer table."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from midiml.cluster.grid import METHODS
from midiml.cluster.search import Search
from midiml.cluster.selection import Selection

# The seed study's published figures (comparison only; never used in our numbers).
SEED = {
    "files": 1385,
    "umap3_kmeans3_silhouette": 0.515,
    "composers": 19,
    "composer_nmi_min": 0.073,
    "composer_nmi_max": 0.194,
}


def _f(v: Any, nd: int = 3) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "–"
    if isinstance(v, float):
        return f"{v:.{nd}f}"
    return str(v)


def curves(table: pd.DataFrame) -> pd.DataFrame:
    """Per k, each method's best silhouette and best NMI over its reducers and settings."""
    g = table.groupby(["k", "method"])[["silhouette", "nmi"]].max().unstack("method")
    out = pd.DataFrame({"k": g.index.astype(int)})
    for metric in ("nmi", "silhouette"):
        for m in METHODS:
            if (metric, m) in g.columns:
                out[f"{m}_{metric}"] = g[(metric, m)].round(4).to_numpy()
    return out


def render_markdown(
    genre: Search,
    gmetrics: Mapping[str, Any],
    composer: Search | None,
    cmetrics: Mapping[str, Any],
    cinfo: Mapping[str, Any],
    figures: Mapping[str, str],
    selection: Selection | None = None,
    fmetrics: Mapping[str, Any] | None = None,
) -> str:
    t = genre.grid.table
    n_points = len(t)
    lines = [
        "# Clustering",
        "",
        f"Grid search by the `cluster` stage over {n_points} points (reducer × method × k) on "
        f"{len(genre.truth)} files and {genre.x.shape[1]} standardised features. Silhouette is "
        "Euclidean, computed in the space the clustering used (the reduced space for PCA/UMAP, "
        "the standardised features for `none`); NMI and ARI are against genre. What the "
        "features are and how to read this page: docs/clustering.md.",
        "",
        *feature_lines(selection, fmetrics),
        "## Genre",
        "",
        "| selection | method | reducer | k | silhouette | NMI | ARI |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for key, label in (
        ("best_by_silhouette", "best by silhouette"),
        ("best_by_nmi", "best by NMI"),
        ("umap3_kmeans3", "seed's config: UMAP-3D → KMeans k=3"),
    ):
        r = gmetrics.get(key)
        if r:
            lines.append(
                f"| {label} | {r['method']} | {r['reducer']} | {r['k']} | "
                f"{_f(r['silhouette'])} | {_f(r['nmi'])} | {_f(r['ari'])} |"
            )
    r = gmetrics.get("best_by_nmi_well_separated")
    if r:
        lines.append(
            f"| best NMI with silhouette ≥ {r['min_silhouette']} | {r['method']} | "
            f"{r['reducer']} | {r['k']} | {_f(r['silhouette'])} | {_f(r['nmi'])} | "
            f"{_f(r['ari'])} |"
        )
    lines.append(
        f"| seed study (UMAP-3D → KMeans k=3, {SEED['files']:,} files) | kmeans | "
        f"umap3 | 3 | {SEED['umap3_kmeans3_silhouette']} | – | – |"
    )
    lines += [
        "",
        "Best grid point per method and reducer kind (by NMI):",
        "",
        "| method | reducer | settings | k | silhouette | NMI | ARI |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    t2 = t.assign(_kind=t["reducer"].str.extract(r"^(none|pca|umap\d)")[0])
    for (m, _), g in t2.groupby(["method", "_kind"], sort=True):
        r = g.sort_values(["nmi", "silhouette"], ascending=False).iloc[0]
        lines.append(
            f"| {m} | {r['reducer']} | {r['method_config']} | {int(r['k'])} | "
            f"{_f(r['silhouette'])} | {_f(r['nmi'])} | {_f(r['ari'])} |"
        )
    lines.append("")
    for key, caption in (
        ("umap2", "UMAP 2-D, coloured by genre and by the best-by-NMI configuration's clusters"),
        ("umap3", "UMAP 3-D (seed's reducer), coloured by genre"),
        ("vs_k", "Silhouette and NMI against k (best over reducers and settings, per method)"),
    ):
        if key in figures:
            lines += [f"![{caption}]({figures[key]})", ""]

    lines += ["## Composers", ""]
    if composer is None:
        lines += [f"Too few composer-labelled files ({cinfo.get('n_files', 0)}).", ""]
        return "\n".join(lines) + "\n"
    n_comp = cinfo["n_composers"]
    lines += [
        f"{cinfo['n_files']} composer-labelled files, {n_comp} composers (files without a "
        "composer, e.g. the Christmas folder, left out). Per method, the best NMI over its "
        "reducers and settings; chance = mean NMI of random labelings with the same k "
        "(NMI grows with k by chance alone, so compare against it; AMI corrects for it).",
        "",
        "| method | NMI k=6 | NMI k=N | AMI k=N | best setting at k=N |",
        "|---|---:|---:|---:|---|",
    ]
    ct = composer.grid.table
    for m in METHODS:
        g = ct[(ct["method"] == m) & (ct["k"] == n_comp)]
        best = g.sort_values("nmi", ascending=False).iloc[0] if len(g) else None
        setting = f"{best['reducer']} / {best['method_config']}" if best is not None else "–"
        ami = float(best["ami"]) if best is not None else None
        lines.append(
            f"| {m} | {_f(cmetrics[m]['nmi_at_k_fixed'])} "
            f"| {_f(cmetrics[m]['nmi_at_k_composers'])} | {_f(ami)} | {setting} |"
        )
    chance = cinfo.get("chance_nmi", {})
    lines.append(
        f"| chance (random labels) | {_f(chance.get(cinfo['k_fixed']))} | "
        f"{_f(chance.get(n_comp))} | 0.000 | – |"
    )
    lines.append(
        f"| seed study ({SEED['composers']} composers) | – | "
        f"{SEED['composer_nmi_min']}–{SEED['composer_nmi_max']} | – | – |"
    )
    lines.append("")
    return "\n".join(lines) + "\n"


SET_LABELS = {
    "chosen": "the columns clustered above",
    "all": "every numeric feature (the classifier's table)",
    "file_habits": "file habits only (tempo map, velocities, tracks, length, beat grid, key)",
}


def feature_lines(selection: Selection | None, fmetrics: Mapping[str, Any] | None) -> list[str]:
    """The "Features clustered" section: the criterion, the chosen columns, and the small
    grid on the chosen, all and file-habit column sets."""
    if selection is None:
        return []
    lines = ["## Features clustered", ""]
    if selection.measured:
        kept = selection.table[selection.table["kept"]].sort_values("ratio", ascending=False)
        lines += [
            f"{len(selection.columns)} of {len(selection.candidates)} music features (the "
            "feature table without the file habits of `features.ARTIFACT_FEATURES`), kept where "
            "genre explains more of the feature's rank variance than the source does within a "
            "genre, measured on the files of the sources that are not clustered "
            f"({', '.join(selection.held_out_sources)}); no clustered song and no clustering "
            "score enters the choice.",
            "",
            "| feature | genre share | source share (within genre) | ratio |",
            "|---|---:|---:|---:|",
        ]
        lines += [
            f"| {r.feature} | {r.genre_share:.3f} | {r.source_share:.3f} | {r.ratio:.1f} |"
            for r in kept.itertuples()
        ]
    else:
        why = (
            "the across-sources filter is off (`cluster.features.min_genre_over_source: null`)"
            if selection.note == "off"
            else "no genre has two sources outside the clustered ones here, so the "
            "across-sources filter was not measured"
        )
        lines += [
            f"{len(selection.columns)} music features: the feature table without the file "
            "habits of `features.ARTIFACT_FEATURES` (track layout, tempo map, velocities, beat "
            f"grid, length, absolute key), the classifier's robust set; {why}.",
        ]
    sets = (fmetrics or {}).get("by_feature_set") or {}
    if sets:
        k = next(iter(sets.values()))["k"]
        lines += [
            "",
            f"What the genre structure at k = {k} is made of: one small grid (UMAP, KMeans and "
            "GMM, `cluster.compare_feature_sets`) on three column sets. In the clustered "
            "collections each genre is one source, so file habits separate them too: a high "
            "NMI on them finds the sources, not the music.",
            "",
            "| columns | features | best NMI | its silhouette | best NMI, silhouette ≥ 0.5 |",
            "|---|---:|---:|---:|---:|",
        ]
        for name, d in sets.items():
            b, w = d["best_nmi"], d["best_nmi_well_separated"]
            lines.append(
                f"| {SET_LABELS.get(name, name)} | {d['n_features']} | {_f(b['nmi'])} | "
                f"{_f(b['silhouette'])} | {_f(None if w is None else w['nmi'])} |"
            )
    return [*lines, ""]


def _palette(values: np.ndarray) -> tuple[list[str], np.ndarray]:
    names = sorted({str(v) for v in values})
    idx = np.array([names.index(str(v)) for v in values])
    return names, idx


def scatter_2d(emb: np.ndarray, genre: np.ndarray, clusters: np.ndarray, title: str):
    """Two panels on the same 2-D embedding: genre colours and cluster colours."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.8))
    for ax, vals, what in ((axes[0], genre, "genre"), (axes[1], clusters, "cluster")):
        names, idx = _palette(vals)
        cmap = plt.get_cmap("tab10" if len(names) <= 10 else "tab20")
        for i, name in enumerate(names):
            sel = idx == i
            ax.scatter(
                emb[sel, 0], emb[sel, 1], s=9, alpha=0.75, color=cmap(i % cmap.N), label=name
            )
        ax.set_title(f"coloured by {what}")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.legend(fontsize=7, markerscale=1.5, loc="best")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def scatter_3d(emb: np.ndarray, genre: np.ndarray, title: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(6.5, 5.5))
    ax = fig.add_subplot(111, projection="3d")
    names, idx = _palette(genre)
    cmap = plt.get_cmap("tab10")
    for i, name in enumerate(names):
        sel = idx == i
        ax.scatter(emb[sel, 0], emb[sel, 1], emb[sel, 2], s=7, alpha=0.7, color=cmap(i), label=name)
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def vs_k_figure(curve: pd.DataFrame):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, metric in zip(axes, ("silhouette", "nmi"), strict=True):
        for m in METHODS:
            col = f"{m}_{metric}"
            if col in curve:
                ax.plot(curve["k"], curve[col], marker="o", label=m)
        ax.set_xlabel("k")
        ax.set_ylabel(metric)
        ax.set_title(f"best {metric} per k")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    return fig
