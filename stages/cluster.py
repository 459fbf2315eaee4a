"""DVC stage `cluster`: genre and composer grid searches -> metrics, report page, figures.

MLflow: one parent run per grid search, one nested child run per grid point.

The per-file cluster assignments (data/clusters/assignments.parquet) are a DVC-cached output,
like the other stages' models and tables: a fresh clone has the committed reports but not
this file, so ``dvc repro`` runs the stage there and MLflow gets its clustering runs, while a
second ``dvc repro`` finds everything up to date.
"""

from __future__ import annotations

import time
from contextlib import contextmanager

import pandas as pd

from midiml import tracking
from midiml.cluster.children import ChildRunLogger
from midiml.cluster.grid import ReducerSpec, reduce
from midiml.cluster.search import (
    assignments,
    composer_metrics,
    composer_search,
    feature_set_check,
    genre_metrics,
    genre_search,
    seed_row,
)
from midiml.cluster.selection import GROUPS, Selection, select_features
from midiml.config import load_params
from midiml.data.split import used_files
from midiml.io import atomic_path, save_figure, write_metrics, write_text
from midiml.report import clustering as report

FIG = "reports/figures"
FIGURES = {
    "umap2": "figures/cluster_umap2.png",
    "umap3": "figures/cluster_umap3.png",
    "vs_k": "figures/cluster_vs_k.png",
}
PLOT = "reports/plots/cluster_vs_k.csv"
ASSIGNMENTS = "data/clusters/assignments.parquet"


@contextmanager
def parent_run(params, name: str):
    """The grid search's parent MLflow run; yields (run, per-point child logger or None)."""
    with tracking.run(params, "clustering", name) as run:
        if run is None or not params.cluster.log_children:
            yield run, None
            return
        logger = ChildRunLogger(run, tracking.standard_tags())
        try:
            yield run, logger
        finally:
            logger.close()


def write_figures(genre, cfg, seed: int) -> dict[str, str]:
    """2-D UMAP (genre | best-by-NMI clusters), 3-D seed reducer, curves vs k (+ plot CSV)."""
    table = genre.grid.table
    best = table.sort_values(["nmi", "silhouette"], ascending=False).iloc[0]
    u2 = ReducerSpec(
        "umap",
        tuple(sorted((k, v) for k, v in cfg.figure_umap2.items() if k != "kind")),
        str(cfg.reducers.umap._target_),
    )
    emb2 = genre.grid.embeddings.get(u2.name)
    if emb2 is None:
        emb2 = reduce(genre.x, u2, seed)
    save_figure(
        report.scatter_2d(
            emb2,
            genre.truth,
            genre.grid.labels[int(best["point"])],
            f"{u2.name}; clusters: {best['reducer']} / {best['method_config']} k={int(best['k'])}",
        ),
        f"{FIG}/cluster_umap2.png",
    )
    figures = {"umap2": FIGURES["umap2"], "vs_k": FIGURES["vs_k"]}
    srow = seed_row(table, cfg.seed_config)
    if srow is not None:
        save_figure(
            report.scatter_3d(genre.grid.embeddings[srow["reducer"]], genre.truth, srow["reducer"]),
            f"{FIG}/cluster_umap3.png",
        )
        figures["umap3"] = FIGURES["umap3"]
    curve = report.curves(table)
    save_figure(report.vs_k_figure(curve), f"{FIG}/cluster_vs_k.png")
    with atomic_path(PLOT) as tmp:
        curve.to_csv(tmp, index=False)
    return figures


def feature_metrics(
    features: pd.DataFrame, selection: Selection, cfg, seed: int, n_jobs: int
) -> dict:
    """The chosen columns' counts and the small grid on the chosen, all and file-habit sets."""
    numeric = [c for c in features.select_dtypes("number").columns if c != "key_tonic"]
    habits = [c for c in GROUPS["artifacts"] if c in numeric]
    sets = {"chosen": selection.columns, "all": numeric, "file_habits": habits}
    return {
        "n_features": len(selection.columns),
        "n_candidates": len(selection.candidates),
        "measured_on_held_out_sources": selection.measured,
        "by_feature_set": feature_set_check(features, sets, cfg, seed, n_jobs),
    }


def main() -> None:
    t0 = time.perf_counter()
    params = load_params()
    cfg = params.cluster
    seed = int(params.seed)
    n_jobs = int(params.get("cpu_threads", 1) or 1)  # grid reducers at a time (processes)
    features = pd.read_parquet("data/features/features.parquet")
    files = pd.read_parquet("data/interim/files.parquet")
    keep = used_files(files, cfg.get("sources"))
    selection = select_features(features, files, keep, cfg.features)
    features = features[features["file_id"].isin(keep)].reset_index(drop=True)
    files = files[files["file_id"].isin(keep)].reset_index(drop=True)

    with parent_run(params, "genre-grid") as (run, log_point):
        genre = genre_search(
            features, cfg, seed, on_point=log_point, columns=selection.columns, n_jobs=n_jobs
        )
        gmetrics = genre_metrics(genre, cfg)
        fmetrics = feature_metrics(features, selection, cfg, seed, n_jobs)
        figures = write_figures(genre, cfg, seed)
        with atomic_path(ASSIGNMENTS) as tmp:
            assignments(genre, features["file_id"]).to_parquet(tmp, index=False)
        if log_point is not None:
            log_point.close()  # children first: one SQLite writer at a time
        if run is not None:
            import mlflow

            for key, r in gmetrics.items():
                mlflow.log_metrics(
                    {
                        f"{key}.{m}": float(r[m])
                        for m in ("silhouette", "nmi", "ari")
                        if r[m] is not None
                    }
                )
            for path in figures.values():
                mlflow.log_artifact(f"reports/{path}")
            mlflow.log_artifact(PLOT)
            mlflow.log_metrics(
                {"features.n_features": fmetrics["n_features"]}
                | {
                    f"feature_sets.{name}.nmi_well_separated": float(r["nmi"])
                    for name, d in fmetrics["by_feature_set"].items()
                    if (r := d["best_nmi_well_separated"]) is not None
                }
            )
    with parent_run(params, "composer-grid") as (run, log_point):
        composer, cinfo = composer_search(
            features,
            files,
            cfg,
            seed,
            on_point=log_point,
            columns=selection.candidates,
            n_jobs=n_jobs,
        )
        cmetrics = composer_metrics(composer, cinfo)
        if log_point is not None:
            log_point.close()
        write_metrics(
            "reports/metrics/clustering.json",
            {"genre": gmetrics, "genre_features": fmetrics, "composer": cmetrics},
        )
        md = report.render_markdown(
            genre, gmetrics, composer, cmetrics, cinfo, figures, selection, fmetrics
        )
        write_text("reports/clustering.md", md)
        if run is not None:
            import mlflow

            mlflow.log_metrics(
                {
                    f"{m}.{k}": float(v)
                    for m, d in cmetrics.items()
                    for k, v in d.items()
                    if v is not None
                }
            )
            mlflow.log_artifact("reports/clustering.md")
    b = gmetrics["best_by_nmi"]
    composer_nmi = {m: d["nmi_at_k_composers"] for m, d in cmetrics.items()}
    print(
        f"cluster: {len(genre.grid.table)} genre points; best NMI {b['nmi']} "
        f"(sil {b['silhouette']}, {b['reducer']} / {b['method']} k={b['k']}); "
        f"composer NMI at k = composers {composer_nmi}; {time.perf_counter() - t0:.1f} s"
    )


if __name__ == "__main__":
    main()
