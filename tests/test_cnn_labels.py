"""The CNN stage labels its task's test and validation songs once (``cnn_fit.LABELS_FILE``),
the selection copies the labels beside the checkpoint, and the evaluate stage scores the CNN
by them without torch: the same labels as the checkpoint gives. ``classifier.cnn.patience``
is the CNN's own early-stopping patience."""

from __future__ import annotations

import json

import numpy as np

from midiml.classify.cnn_fit import LABELS_FILE, cnn_predictor, train_cnn_tasks
from midiml.classify.evaluation import saved_cnn_labels
from midiml.classify.fits import tasks_of
from midiml.classify.runs import ROBUSTNESS_TASK
from midiml.classify.selection import write_selection
from tests.conftest import tiny_params
from tests.test_robust_serving import two_genre_songs

CNN = {
    "tasks": ["genre"],
    "roll": {"step": 0.25, "unit": "beats", "pitch_low": 21, "pitch_high": 108},
    "module": {
        "_target_": "midiml.classify.cnn.PianoRollCNN",
        "channels": [4],
        "stride": 2,
        "dropout": 0.0,
        "lr": 0.01,
        "weight_decay": 0.0,
    },
    "datamodule": {
        "_target_": "midiml.classify.cnn.CropDataModule",
        "crop_steps": 16,
        "train_crops_per_song": 2,
        "eval_crops_per_song": 2,
        "balanced": True,
        "batch_size": 16,
    },
    "max_epochs": 2,
    "monitor": "val_f1",
    "monitor_mode": "max",
    "patience": 1,
}


def test_cnn_stage_labels_are_the_checkpoints_and_reach_the_evaluation(tmp_path, monkeypatch):
    from midiml import training

    seen = {}
    original = training.fit_lightning

    def probe(*args, **kwargs):  # the early stopping the CNN was fitted with
        seen["patience"] = kwargs.get("patience")
        return original(*args, **kwargs)

    monkeypatch.setattr("midiml.classify.cnn.fit_lightning", probe)
    (tmp_path / "songs").mkdir()
    files, notes, _ = two_genre_songs(tmp_path / "songs")
    splits = files[["file_id", "genre", "split"]]
    params = tiny_params(trainer={"max_epochs": 2})
    params.classifier.tasks = {"genre": {"label": "genre"}}
    params.classifier.cnn = CNN
    tasks = tasks_of(params, files, splits)
    fits = tmp_path / "fits"
    train_cnn_tasks(params, tasks, files, notes, fits, log=lambda *_: None)
    assert seen["patience"] == 1
    info = json.loads((fits / "cnn.json").read_text())["genre"]
    assert info["labels"] == f"genre/{LABELS_FILE}"
    task = tasks[ROBUSTNESS_TASK]
    ids = task.ids("test") + task.ids("val")
    saved = json.loads((fits / info["labels"]).read_text())
    again = cnn_predictor(fits / info["file"], params.classifier.cnn.roll)(notes, ids)
    assert list(saved) == ids and list(saved.values()) == list(again)

    out = tmp_path / "models"
    entries = {"genre": {"models": {}, "serve_order": [], "wanted": None, "classes": task.classes}}
    manifest = write_selection(entries, {"genre": {}}, {"genre": info}, fits, {}, out)
    cnn = manifest["tasks"]["genre"]["models"]["cnn"]
    assert (out / cnn["labels"]).read_bytes() == (fits / info["labels"]).read_bytes()
    known = saved_cnn_labels(manifest, out, {"genre": ids})
    assert known["genre"] == dict(zip(ids, again, strict=True))
    # a song the CNN stage did not label: the evaluation labels the task's songs itself
    assert saved_cnn_labels(manifest, out, {"genre": [*ids, "unknown/song"]}) == {}
    clean = np.asarray([saved[i] for i in task.ids("test")], dtype=object)
    assert np.array_equal(clean == task.y("test"), again[: len(task.ids("test"))] == task.y("test"))
