"""``train_all``: every classifier stage up to the selection in one process (tests, tools).

Apart from ``runs``, so that the stages that import ``runs`` (the feature models, the
selection) do not import torch through the CNN's training (``cnn_fit``): about 3 s of CPU
per stage.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from midiml.classify.cnn_fit import train_cnn_tasks
from midiml.classify.fits import fit_all_tasks, tasks_of
from midiml.classify.runs import (
    ROBUSTNESS_TASK,
    fitted_models,
    read_test_copies,
    select_all,
    write_copies,
    write_test_copies,
)


def train_all(
    params: Any,
    files: pd.DataFrame,
    splits: pd.DataFrame,
    table: pd.DataFrame,
    notes: pd.DataFrame | None,
    out_dir: Path,
    log=print,
) -> dict[str, Any]:
    """Every classifier stage up to the selection, in one process (tests, tools): the same
    functions the stages call, with their outputs in a temporary folder; the served models
    go to ``out_dir``. Returns the manifest."""
    with tempfile.TemporaryDirectory(prefix="midiml-classifiers-") as tmp:
        copies_dir, fits_dir = Path(tmp) / "copies", Path(tmp) / "fits"
        copies_dir.mkdir()
        write_copies(params, files, splits, notes, copies_dir, log)
        for model in fitted_models(params):
            (fits_dir / model).mkdir(parents=True)
            fit_all_tasks(params, model, files, splits, table, copies_dir, fits_dir / model, log)
        (fits_dir / "cnn").mkdir(parents=True)
        cnn = params.classifier.get("cnn")
        if notes is not None and cnn and cnn.get("tasks"):
            tests_dir = Path(tmp) / "test_copies"
            write_test_copies(params, files, splits, notes, tests_dir)
            train_cnn_tasks(
                params,
                tasks_of(params, files, splits),
                files,
                notes,
                fits_dir / "cnn",
                log,
                {ROBUSTNESS_TASK: read_test_copies(tests_dir)},
            )
        return select_all(params, files, splits, table, copies_dir, fits_dir, out_dir, log)
