"""The classifier stages as functions (``train_all.train_all``: all of them in one process).

The stages (``dvc.yaml``), each a value the next reads from disk:

1. ``classifier_copies``: re-encoded copies of the training songs as feature rows
   (``write_copies``), and the made-up loops that stand for the one-source genre when the
   served model is chosen;
2. ``train_classifier@<model>`` (one per key of ``classifier.models``, and ``words``):
   ``fits.fit_all_tasks``; ``train_classifier_cnn``: ``cnn_fit.train_cnn_tasks`` (not
   imported here: the feature-model stages need no torch);
3. ``select_classifiers``: the vote, the blend, class priors, the served model
   (``select_all`` -> ``models/classifiers/``);
4. ``evaluate_classifiers``: test scores, robustness, the blind folder and the page.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pandas as pd

from midiml.classify.fits import (
    WORDS,
    load_fit,
    read_copies,
    task_fits_path,
    tasks_of,
)
from midiml.classify.robustness import iter_reencoded
from midiml.classify.selection import (
    AUTO_HELD_OUT_SOURCE,
    loops_genre,
    select_task,
    write_selection,
)
from midiml.classify.source_weighting import song_sources
from midiml.classify.tables import (  # noqa: F401  (read_tables: the stages' reader)
    copies_as_configured,
    feature_kwargs,
    plain,
    read_tables,
    selection_loops,
)
from midiml.io import read_timings
from midiml.represent.perturb import PERTURBATIONS

LOOPS_FILE = "selection_loops.parquet"
ROBUSTNESS_TASK = "genre"  # the task whose served model is scored on re-encoded test songs


def write_copies(
    params: Any,
    files: pd.DataFrame,
    splits: pd.DataFrame,
    notes: pd.DataFrame | None,
    out_dir: Path,
    log=print,
) -> None:
    """Stage ``classifier_copies``: ``out_dir/<task>.parquet``, the feature rows of re-encoded
    copies of each ``classifier.copies`` task's training songs, and ``out_dir/`` +
    ``LOOPS_FILE``, the made-up loops the selection scores (``serve_model:
    auto_held_out_source``, when a task has their genre)."""
    cfg = params.classifier
    aug = cfg.get("copies")
    out_dir.mkdir(parents=True, exist_ok=True)
    tasks = {n: t for n, t in tasks_of(params, files, splits).items() if not isinstance(t, str)}
    wanted = str(cfg.get("serve_model", "auto")) == AUTO_HELD_OUT_SOURCE
    classes = sorted({c for t in tasks.values() for c in t.classes})
    # the loops are made in a thread of this process while it waits for the copies' workers
    # (the largest draw keeps one of them busy alone at the end); the same rows either way
    with ThreadPoolExecutor(1) as pool:
        loops = pool.submit(selection_loops, params, classes) if wanted else None
        for name, task in tasks.items():
            if aug and notes is not None and name in list(aug.get("tasks", [])):
                start = time.perf_counter()
                rows = copies_as_configured(params, task.ids("train"), files, notes)
                if len(rows):
                    rows.to_parquet(out_dir / f"{name}.parquet")
                log(
                    f"{name}: {len(rows)} re-encoded training rows "
                    f"({time.perf_counter() - start:.1f} s)"
                )
        made = loops.result() if loops is not None else None
    if made is not None:
        made.to_parquet(out_dir / LOOPS_FILE)


def robustness_songs(params: Any, files: pd.DataFrame, splits: pd.DataFrame) -> list[str]:
    """The test songs of ``ROBUSTNESS_TASK`` (none when the task is skipped): what stage
    ``reencoded_test_songs`` re-encodes, so the only notes it reads."""
    task = tasks_of(params, files, splits).get(ROBUSTNESS_TASK)
    return [] if task is None or isinstance(task, str) else task.ids("test")


def write_test_copies(
    params: Any, files: pd.DataFrame, splits: pd.DataFrame, notes: pd.DataFrame, out_dir: Path
) -> None:
    """Stage ``reencoded_test_songs``: the test songs of ``ROBUSTNESS_TASK`` re-encoded by
    each perturbation, ``out_dir/<how>.parquet`` (feature rows) and ``<how>.notes.parquet``;
    every model and the CNN are scored on them (no model is needed to make them). ``notes``:
    at least those songs' (``robustness_songs``)."""
    task = tasks_of(params, files, splits).get(ROBUSTNESS_TASK)
    out_dir.mkdir(parents=True, exist_ok=True)
    if task is None or isinstance(task, str):
        return
    copies = iter_reencoded(  # each written while the next are drawn
        task.ids("test"),
        task.labels,
        files,
        notes,
        feature_kwargs(params),
        int(params.seed),
        int(params.classifier.get("n_jobs", 1)),
    )
    for how, (table, song_notes) in copies:
        table.to_parquet(out_dir / f"{how}.parquet")
        song_notes.to_parquet(out_dir / f"{how}.notes.parquet")


def read_test_copies(
    folder: Path, with_notes: bool = True
) -> dict[str, tuple[pd.DataFrame, pd.DataFrame | None]] | None:
    """``write_test_copies``' re-encodings (re-encoding -> (feature rows, notes)), or None;
    the notes (most of the folder) only if asked (only the CNN reads them)."""
    if not folder.is_dir():
        return None
    hows = [*PERTURBATIONS, "random_mix"]
    if not all((folder / f"{how}.parquet").exists() for how in hows):
        return None
    return {
        how: (
            pd.read_parquet(folder / f"{how}.parquet"),
            pd.read_parquet(folder / f"{how}.notes.parquet") if with_notes else None,
        )
        for how in hows
    }


def fitted_models(params: Any) -> list[str]:
    """The names of the fits the selection reads: every ``classifier.models`` key, and the
    words model when ``classifier.words`` names a task."""
    words = params.classifier.get("words")
    return [*params.classifier.models, *([WORDS] if words and words.get("tasks") else [])]


def select_all(
    params: Any,
    files: pd.DataFrame,
    splits: pd.DataFrame,
    table: pd.DataFrame,
    copies_dir: Path,
    fits_dir: Path,
    out_dir: Path,
    log=print,
) -> dict[str, Any]:
    """Stage ``select_classifiers``: every task's models from ``fits_dir/<model>/`` (and the
    CNNs from ``fits_dir/cnn/``) into ``out_dir``; returns the manifest."""
    source = song_sources(files)
    loops_path = copies_dir / LOOPS_FILE
    loops = pd.read_parquet(loops_path) if loops_path.exists() else None
    cnn_dir = fits_dir / "cnn"
    cnn_json = cnn_dir / "cnn.json"
    cnn = json.loads(cnn_json.read_text()) if cnn_json.exists() else {}
    for name, run in read_timings("classifier_fits_cnn").items():  # MLflow run ids
        if name in cnn:
            cnn[name] |= run
    entries, models = {}, {}
    for name, task in tasks_of(params, files, splits).items():
        if isinstance(task, str):
            entries[name] = {"skipped": task}
            log(f"{name}: skipped ({task})")
            continue
        fits = {}
        for m in fitted_models(params):
            path = task_fits_path(fits_dir / m, name)
            if path.exists():
                fits[m] = load_fit(path)
        task_loops = loops if loops is not None and loops_genre(params) in task.classes else None
        entry, models[name] = select_task(params, task, fits, table, files, source, task_loops, log)
        copies = read_copies(copies_dir, name)
        entries[name] = {
            "classes": task.classes,
            "positive": task.positive,
            "genres": task.genres,
            **({"copy_rows": len(copies)} if copies is not None else {}),
            **entry,
        }
    return write_selection(
        entries, models, cnn, cnn_dir, plain(params.get("features", {})), out_dir
    )
