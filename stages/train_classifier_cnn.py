"""DVC stage `train_classifier_cnn`: the piano-roll CNN of each task of `classifier.cnn.tasks`
-> models/classifier_fits/cnn/."""

import time
from pathlib import Path

from midiml.classify.cnn_fit import train_cnn_tasks
from midiml.classify.fits import tasks_of
from midiml.classify.runs import ROBUSTNESS_TASK, read_test_copies
from midiml.classify.tables import read_tables
from midiml.config import load_params
from midiml.io import atomic_dir, write_timings


def main() -> None:
    start = time.perf_counter()
    params = load_params()
    files, splits, _, notes = read_tables()
    with atomic_dir("models/classifier_fits/cnn") as tmp:
        tests = read_test_copies(Path("data/reencoded_test_songs"))
        tasks = tasks_of(params, files, splits)
        run_ids = train_cnn_tasks(
            params, tasks, files, notes, tmp, test_copies={ROBUSTNESS_TASK: tests}
        )
    write_timings("classifier_fits_cnn", run_ids)  # MLflow run ids: new every run
    print(f"train_classifier_cnn: {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
