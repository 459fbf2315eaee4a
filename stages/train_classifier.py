"""DVC stage `train_classifier@<model>`: classifier `classifier.models.<model>` (or `words`,
the words model of `classifier.words`) fitted for every task, with its held-out-source refits
and the vote's folds -> models/classifier_fits/<model>/."""

import sys
import time
from pathlib import Path

from threadpoolctl import threadpool_limits

from midiml.classify.fits import fit_all_tasks
from midiml.classify.runs import fitted_models
from midiml.classify.tables import read_tables
from midiml.config import load_params
from midiml.io import atomic_dir, write_timings


def main(model: str) -> None:
    start = time.perf_counter()
    params = load_params()
    if model not in fitted_models(params):
        sys.exit(f"unknown classifier {model!r}; configured: {', '.join(fitted_models(params))}")
    files, splits, table, _ = read_tables(with_notes=False)
    # BLAS/OpenMP threads (HistGradientBoosting's OpenMP thrashes a shared 2-core machine)
    with (
        threadpool_limits(limits=int(params.classifier.n_threads)),
        atomic_dir(f"models/classifier_fits/{model}") as tmp,
    ):
        copies = Path("data/classifier_copies")
        run_ids = fit_all_tasks(params, model, files, splits, table, copies, tmp)
    write_timings(f"classifier_fits_{model}", run_ids)  # MLflow run ids: new every run
    print(f"train_classifier@{model}: {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main(sys.argv[1])
