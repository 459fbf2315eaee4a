"""DVC stage `evaluate_classifiers`: test scores, baselines, confusion matrices, blind test."""

import time
from pathlib import Path

from midiml.classify.runs import (
    evaluate_all,
    load_manifest,
    read_tables,
    write_blind_folder,
)
from midiml.classify.serving import ModelsMissing, evaluate_blind, load_served
from midiml.config import load_params
from midiml.evaluate.classification import render_markdown
from midiml.io import atomic_dir, write_metrics, write_text

MODELS = Path("models/classifiers")
BLIND = Path("data/blind")
PLOTS = Path("reports/plots/confusion")
FIGURES = Path("reports/figures/classifiers")


def main() -> None:
    start = time.perf_counter()
    params = load_params()
    files, splits, table, notes = read_tables()
    manifest = load_manifest(MODELS)
    with atomic_dir(PLOTS) as plot_dir, atomic_dir(FIGURES) as fig_dir:
        metrics, figures = evaluate_all(
            params, manifest, MODELS, files, splits, table, notes, fig_dir, plot_dir
        )
    with atomic_dir(BLIND) as tmp:
        n = write_blind_folder(files, splits, tmp)
    try:
        blind = evaluate_blind(BLIND, load_served(MODELS))
        blind.pop("predictions", None)
        blind["folder"] = str(BLIND)
        print(f"blind test: {n} files, accuracy {blind['overall']['accuracy']}")
    except (ModelsMissing, FileNotFoundError) as exc:
        blind = {"skipped": str(exc)}
    metrics["blind_test"] = blind
    write_metrics("reports/metrics/classifiers.json", metrics)
    write_text("reports/classifiers.md", render_markdown(metrics, figures))
    print(f"evaluate_classifiers: done in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
