"""DVC stage `select_classifiers`: the vote, the blend, class priors and the served model of
each task, from the fits -> models/classifiers/ (what `midiml classify` serves)."""

import time
from pathlib import Path

from threadpoolctl import threadpool_limits

from midiml.classify.runs import select_all
from midiml.classify.tables import read_tables
from midiml.config import load_params
from midiml.io import atomic_dir, split_run_dependent, write_json, write_timings


def main() -> None:
    start = time.perf_counter()
    params = load_params()
    files, splits, table, _ = read_tables(with_notes=False)
    with (
        threadpool_limits(limits=int(params.classifier.n_threads)),
        atomic_dir("models/classifiers") as tmp,
    ):
        manifest = select_all(
            params,
            files,
            splits,
            table,
            Path("data/classifier_copies"),
            Path("models/classifier_fits"),
            tmp,
        )
        manifest, run_ids = split_run_dependent(manifest)  # MLflow run ids: every run new
        write_json(tmp / "manifest.json", manifest)
    write_timings("classifiers", run_ids)
    print(f"select_classifiers: {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
