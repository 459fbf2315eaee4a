"""DVC stage `train_classifiers`: feature models (grid search on train) and piano-roll CNNs."""

import time
from pathlib import Path

from threadpoolctl import threadpool_limits

from midiml.classify.runs import read_tables, train_all
from midiml.config import load_params
from midiml.io import atomic_dir, write_json

OUT = Path("models/classifiers")


def main() -> None:
    start = time.perf_counter()
    params = load_params()
    cnn = params.classifier.get("cnn")
    augment = params.classifier.get("augment")
    files, splits, table, notes = read_tables(with_notes=bool((cnn and cnn.tasks) or augment))
    # BLAS/OpenMP threads (HistGradientBoosting's OpenMP thrashes a shared 2-core machine)
    with threadpool_limits(limits=int(params.classifier.n_threads)), atomic_dir(OUT) as tmp:
        manifest = train_all(params, files, splits, table, notes, tmp)
        write_json(tmp / "manifest.json", manifest)
    print(f"train_classifiers: {OUT} in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
