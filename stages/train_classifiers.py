"""DVC stage `train_classifiers`: feature models (grid search on train) and piano-roll CNNs."""

import time
from pathlib import Path

import pandas as pd

from midiml.config import load_params
from midiml.io import atomic_dir, write_json
from midiml.models.classifier_runs import train_all

OUT = Path("models/classifiers")


def main() -> None:
    start = time.perf_counter()
    params = load_params()
    files = pd.read_parquet("data/interim/files.parquet")
    splits = pd.read_parquet("data/interim/splits.parquet")
    table = pd.read_parquet("data/features/features.parquet")
    notes = pd.read_parquet("data/interim/notes.parquet") \
        if params.classifier.get("cnn") and params.classifier.cnn.tasks else None
    with atomic_dir(OUT) as tmp:
        manifest = train_all(params, files, splits, table, notes, tmp)
        write_json(tmp / "manifest.json", manifest)
    print(f"train_classifiers: {OUT} in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
