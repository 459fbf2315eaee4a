"""Training the piano-roll CNN of a task (stage ``train_classifier_cnn``) and using it on
any songs' notes: rolls of the songs (and of their own plain re-encoded copies), early
stopping on the validation songs, one checkpoint per task."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from midiml.classify.cnn import PianoRollCNNClassifier, load_cnn, predict_songs
from midiml.classify.copies import kept_copies, song_ids
from midiml.classify.pipelines import TaskData
from midiml.classify.robustness import SongsPredictor
from midiml.io import split_run_dependent
from midiml.represent.perturb import perturb_songs
from midiml.represent.pianoroll import RollSpec, song_rolls

LABELS_FILE = "cnn_labels.json"  # a CNN's labels of its task's test and validation songs


def rolls_for(notes: pd.DataFrame | None, roll_cfg: Any, ids: list[str]) -> list:
    """Each song's piano roll (``roll_cfg``: a ``RollSpec``'s params), in the order of ``ids``."""
    rolls = song_rolls(notes, RollSpec.from_params(roll_cfg), ids)
    return [rolls[i] for i in ids]


def training_rolls(
    notes: pd.DataFrame,
    roll_cfg: Any,
    labels: pd.Series,
    ids: list[str],
    copies: tuple[pd.DataFrame, pd.DataFrame] | None = None,
) -> tuple[list, np.ndarray]:
    """Piano rolls and labels to fit a CNN on: the songs ``ids``, then their re-encoded
    copies among ``copies`` ((notes, file rows), ids ``<song>#...``), each labelled as its
    song; a copy of a song left out of the fit stays out too (as ``pipelines.with_copies``
    does for feature rows)."""
    rolls, y = rolls_for(notes, roll_cfg, ids), labels.loc[ids].to_numpy(dtype=object)
    if copies is None:
        return rolls, y
    copy_notes, copy_files = copies
    keep, song = kept_copies(ids, copy_files)
    rolls += rolls_for(copy_notes, roll_cfg, list(copy_files["file_id"][keep]))
    return rolls, np.concatenate([y, labels.loc[song[keep]].to_numpy(dtype=object)])


def cnn_copies(
    params: Any, ids: list[str], files: pd.DataFrame, notes: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """Notes and file rows of ``classifier.cnn.copies`` random re-encodings of each song
    (``perturb.random_reencoding``; ids ``<song>#copy<k>``), or None for none. The CNN gets
    its own plain copies, not the feature models' (``classifier.copies``: six per lo-fi
    loop, made-up melodies and textures, excerpts): tried, it scored lower on the test songs
    and trained several times longer."""
    n_copies = int(params.classifier.cnn.get("copies", 0))
    if not n_copies:
        return None
    parts = [
        perturb_songs(notes, files, ids, seed=int(params.seed) + 5000 + k, suffix=f"#copy{k}")
        for k in range(n_copies)
    ]
    return (
        pd.concat([n for n, _ in parts], ignore_index=True),
        pd.concat([f for _, f in parts], ignore_index=True),
    )


def train_cnn(
    params: Any,
    task: TaskData,
    files: pd.DataFrame,
    notes: pd.DataFrame | None,
    out_dir: Path,
    log,
) -> dict[str, Any]:
    """Fit the piano-roll CNN on the task's training songs and their re-encoded copies
    (``cnn_copies``), early-stopped on the validation songs."""

    if notes is None:
        return {"skipped": "no note table given"}
    if len(task.ids("val")) == 0:
        return {"skipped": "no validation songs for early stopping"}
    if set(task.y("val")) - set(task.y("train")):
        return {"skipped": "validation has classes absent from training"}
    ccfg = params.classifier.cnn
    start = time.perf_counter()
    tmp = out_dir / task.name / ".cnn_ckpt"
    clf = PianoRollCNNClassifier(ccfg, params, f"{task.name}/cnn")
    train = task.ids("train")
    copies = cnn_copies(params, train, files, notes)
    rolls, y = training_rolls(notes, ccfg.roll, task.labels, train, copies)
    clf.fit(
        rolls,
        y,
        rolls_for(notes, ccfg.roll, task.ids("val")),
        task.y("val"),
        tmp,
    )
    res = clf.fit_result
    target = out_dir / task.name / "cnn.ckpt"
    if res.best_checkpoint is None:
        shutil.rmtree(tmp, ignore_errors=True)
        return {"skipped": "training produced no checkpoint"}
    shutil.move(str(res.best_checkpoint), target)
    shutil.rmtree(tmp, ignore_errors=True)
    log(
        f"{task.name}/cnn: {len(res.history)} epochs, best {ccfg.get('monitor', 'val_f1')} "
        f"{res.best_score} "
        f"({time.perf_counter() - start:.1f} s)"
    )
    return {
        "kind": "cnn",
        "file": f"{task.name}/cnn.ckpt",
        "epochs": len(res.history),
        "monitor": str(ccfg.get("monitor", "val_f1")),
        "best_score": res.best_score,
        "run_id": res.run_id,
    }


def cnn_predictor(path: Path, roll_cfg: Any) -> SongsPredictor:
    """Load a trained CNN once; return a function from (notes, song ids) to predicted labels:
    any songs' notes, re-encoded ones included."""
    module = load_cnn(path)
    classes = np.asarray(module.hparams.classes, dtype=object)
    return lambda notes, ids: classes[
        predict_songs(module, rolls_for(notes, roll_cfg, ids)).argmax(axis=1)
    ]


def cnn_robustness(
    predict: SongsPredictor,
    task: TaskData,
    test_copies: dict[str, tuple[pd.DataFrame, pd.DataFrame]],
    known: dict[str, str],
) -> dict[str, Any]:
    """The CNN's accuracy on the task's test songs (``known``: its labels of them,
    ``train_cnn_tasks``) and on each re-encoding of them (``test_copies``:
    ``runs.write_test_copies``; ``predict``: ``cnn_predictor``), beside which the served
    model's is reported. Computed where the CNN is trained: it changes with the CNN only."""
    labels = task.labels
    clean = np.asarray([known[i] for i in task.ids("test")], dtype=object)
    scores = {}
    for how, (table, copy_notes) in test_copies.items():
        ids = list(table["file_id"])
        y = labels.loc[song_ids(table["file_id"])].to_numpy(dtype=object)
        scores[how] = float((predict(copy_notes, ids) == y).mean())
    return {
        "clean_accuracy": float((clean == task.y("test")).mean()),
        "reencoded": scores,
    }


def train_cnn_tasks(
    params: Any,
    tasks: dict[str, Any],
    files: pd.DataFrame,
    notes: pd.DataFrame,
    out_dir: Path,
    log=print,
    test_copies: dict[str, dict[str, tuple[pd.DataFrame, pd.DataFrame]]] | None = None,
) -> dict[str, dict[str, str | None]]:
    """Stage ``train_classifier_cnn``: a CNN per task of ``classifier.cnn.tasks``, into
    ``out_dir/<task>/cnn.ckpt``, its labels of the task's test and validation songs
    (``out_dir/<task>/`` + ``LABELS_FILE``: what the evaluate stage scores it by, without
    loading torch), and ``out_dir/cnn.json`` (task -> what was trained, and its
    ``cnn_robustness`` where ``test_copies`` has the task's re-encoded test songs).
    Returns each task's MLflow run id, for ``reports/timings/`` (not in cnn.json: they
    change every run)."""
    cnn_cfg = params.classifier.get("cnn")
    wanted = list(cnn_cfg.tasks) if cnn_cfg else []
    infos = {}
    for name, task in tasks.items():
        if name in wanted and not isinstance(task, str):
            (out_dir / name).mkdir(parents=True, exist_ok=True)
            infos[name] = info = train_cnn(params, task, files, notes, out_dir, log)
            if not info.get("file"):
                continue
            start = time.perf_counter()
            predict = cnn_predictor(out_dir / info["file"], cnn_cfg.roll)
            ids = task.ids("test") + task.ids("val")
            known = dict(zip(ids, predict(notes, ids), strict=True))
            info["labels"] = f"{name}/{LABELS_FILE}"
            (out_dir / info["labels"]).write_text(json.dumps(known, indent=0))
            copies = (test_copies or {}).get(name)
            if copies:
                info["robustness"] = cnn_robustness(predict, task, copies, known)
            log(
                f"{name}/cnn: labelled its test and validation songs"
                + (" and the re-encoded test songs" if copies else "")
                + f" ({time.perf_counter() - start:.1f} s)"
            )
    infos, run_ids = split_run_dependent(infos)  # MLflow run ids change every run
    (out_dir / "cnn.json").write_text(json.dumps(infos, indent=1))
    return run_ids
