"""DVC stage `ingest`: every MIDI file -> note events + file table (+ dataset table, MLflow run)."""

from midiml import tracking
from midiml.config import load_params
from midiml.data.ingest import Rules, find_files, ingest_to_parquet, subset
from midiml.data.sources import sources_from_params
from midiml.evaluate.dataset_table import dataset_table
from midiml.io import save_figure, write_metrics, write_parquet, write_text
from midiml.report.dataset import distribution_figure, render_markdown

FIGURE = "reports/figures/dataset_distributions.png"


def main() -> None:
    params = load_params()
    d = params.data
    found = subset(
        find_files("data/raw", sources_from_params(params).values()), d.subset_per_genre, d.seed
    )
    rules = Rules(d.max_length_s, d.min_notes, bool(d.strict))
    files, n_notes = ingest_to_parquet(found, rules, "data/interim/notes.parquet", d.workers)
    table = dataset_table(files)

    write_parquet(files, "data/interim/files.parquet")
    write_metrics("reports/metrics/dataset.json", table)
    fig = distribution_figure(files)
    save_figure(fig, FIGURE)
    md = render_markdown(table, files, "figures/dataset_distributions.png")
    write_text("reports/dataset.md", md)

    with tracking.run(params, "data", "ingest") as run:
        if run is not None:
            import mlflow

            for genre, row in table.items():
                mlflow.log_metrics({f"{genre}.{k}": float(v) for k, v in row.items()})
            mlflow.log_artifact("reports/dataset.md")
            mlflow.log_artifact(FIGURE)
    n_q = int((files["status"] == "quarantined").sum())
    print(
        f"ingest: found {len(files)} = ok {len(files) - n_q} + quarantined {n_q}; {n_notes:,} notes"
    )


if __name__ == "__main__":
    main()
