"""Stage ``evaluate_classifiers``' scores: every trained model on the validation and test
songs, its confusion matrix, the served model's accuracy per source, and the test songs as a
blind folder. Each model's MLflow run gets its test metrics in an evaluation run nested
under it."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from midiml import tracking
from midiml.classify.fits import CONCERN
from midiml.classify.pipelines import build_task, feature_matrix, load_model
from midiml.classify.selection import serve_rule
from midiml.classify.serving import evaluate_blind, load_served
from midiml.evaluate import classification as ev
from midiml.io import atomic_dir, atomic_path, read_timings, save_figure


def song_predictor(
    info: dict[str, Any],
    model_dir: Path,
    table: pd.DataFrame,
    notes: pd.DataFrame | None,
    roll_cfg: Any,
    known: dict[str, str] | None = None,
    loaded: dict[str, Any] | None = None,
):
    """Load a trained model once; return a function from song ids to predicted labels
    (``known``: the model's labels by song, already computed, e.g. ``cnn_labels``;
    ``loaded``: models already loaded, by manifest ``file``)."""
    if known is not None:
        return lambda ids: np.asarray([known[i] for i in ids], dtype=object)
    if info["kind"] == "features":
        fitted = (loaded or {}).get(info["file"]) or load_model(model_dir / info["file"])
        return lambda ids: fitted.predict(feature_matrix(table, ids, fitted.columns))
    from midiml.classify.cnn_fit import cnn_predictor  # torch: only for a CNN

    predict = cnn_predictor(model_dir / info["file"], roll_cfg)
    return lambda ids: predict(notes, ids)


def cnn_songs(manifest: dict[str, Any], files: pd.DataFrame, splits: pd.DataFrame, cfg: Any):
    """task -> the test and validation songs its CNN is scored on (tasks with a trained CNN)."""
    out = {}
    for name, entry in manifest["tasks"].items():
        info = {} if entry.get("skipped") else entry["models"].get("cnn", {})
        if info.get("file") and not info.get("skipped"):
            task = build_task(name, files, splits, cfg)
            out[name] = task.ids("test") + task.ids("val")
    return out


def saved_cnn_labels(
    manifest: dict[str, Any], model_dir: Path, songs: dict[str, list[str]]
) -> dict[str, dict[str, str]]:
    """task -> song -> label, as the CNN stage saved them (``cnn_fit.LABELS_FILE``, copied by
    the selection), for the tasks of ``songs`` (``cnn_songs``) whose file has every one of
    their songs: no torch and no prediction here; ``cnn_labels`` makes the others."""
    out = {}
    for name, ids in songs.items():
        file = manifest["tasks"][name]["models"]["cnn"].get("labels")
        if file and (model_dir / file).exists():
            known = json.loads((model_dir / file).read_text())
            if all(i in known for i in ids):
                out[name] = {i: known[i] for i in ids}
    return out


def cnn_labels(
    manifest: dict[str, Any],
    model_dir: Path,
    roll_cfg: Any,
    notes: pd.DataFrame,
    songs: dict[str, list[str]],
    n_threads: int = 1,
) -> dict[str, dict[str, str]]:
    """task -> song -> the label the task's CNN gives it (``songs``: ``cnn_songs``; ``notes``:
    theirs). What ``evaluate_all`` scores the CNNs by; the evaluate stage runs it in a
    worker process beside the feature models' scores, so that only the worker imports torch
    (``n_threads``: its BLAS/OpenMP threads, as the stage's own)."""
    from threadpoolctl import threadpool_limits

    from midiml.classify.cnn_fit import cnn_predictor

    out = {}
    with threadpool_limits(limits=n_threads):
        for name, ids in songs.items():
            info = manifest["tasks"][name]["models"]["cnn"]
            pred = cnn_predictor(model_dir / info["file"], roll_cfg)(notes, ids)
            out[name] = dict(zip(ids, pred, strict=True))
    return out


def evaluate_all(
    params: Any,
    manifest: dict[str, Any],
    model_dir: Path,
    files: pd.DataFrame,
    splits: pd.DataFrame,
    table: pd.DataFrame,
    notes: pd.DataFrame | None,
    fig_dir: Path,
    plot_dir: Path,
    confusion_figure: Any,
    log=print,
    cnn_known: Callable[[str], dict[str, str]] | None = None,
    loaded: dict[str, Any] | None = None,
) -> tuple[dict, dict[str, str]]:
    """Test (and validation) scores of every trained model; figures and plot tables written.

    ``confusion_figure(cm, labels, title)`` draws a confusion matrix (the report's drawing).
    ``cnn_known(task)``: the task's CNN labels by song when already computed (``cnn_labels``).
    ``loaded``: models already loaded, by manifest ``file`` (``serving.Served.by_file``).
    """

    cfg = params.classifier
    roll_cfg = (cfg.get("cnn") or {}).get("roll")  # None: no CNN configured
    metrics: dict[str, Any] = {"tasks": {}}
    figures: dict[str, str] = {}
    runs = read_timings("classifiers").get("tasks", {})  # MLflow run ids, by select_classifiers
    for name, entry in manifest["tasks"].items():
        run_ids = runs.get(name, {}).get("models", {})
        if entry.get("skipped"):
            metrics["tasks"][name] = {"skipped": entry["skipped"]}
            continue
        task = build_task(name, files, splits, cfg)
        y_train, y_val, y_test = task.y("train"), task.y("val"), task.y("test")
        res: dict[str, Any] = {
            "classes": task.classes,
            "n_train": len(y_train),
            "n_val": len(y_val),
            "n_test": len(y_test),
            "majority": ev.majority_baseline(y_train, y_test, task.positive),
            "models": {},
            "serve": entry.get("serve"),
            "serve_rule": serve_rule(entry, str(cfg.get("serve_model", "auto"))),
        }
        original = _original_mask(files, task.ids("test"), cfg.get("original_sources"))
        if original is not None:
            res["n_test_original_sources"] = int(original.sum())
        if task.positive is not None:
            res["positive"] = task.positive
            res["naive_positive"] = ev.naive_positive_baseline(y_test, task.positive)
        for model, info in entry["models"].items():
            if info.get("skipped"):
                res["models"][model] = {"skipped": info["skipped"]}
                continue
            known = cnn_known(name) if cnn_known and info["kind"] == "cnn" else None
            predict = song_predictor(info, model_dir, table, notes, roll_cfg, known, loaded)
            pred = predict(task.ids("test"))
            m = ev.scores(y_test, pred, task.positive)
            if original is not None:  # the first datasets alone: comparable with earlier runs
                orig = ev.scores(y_test[original], pred[original], task.positive)
                m["accuracy_original_sources"] = orig["accuracy"]
                m["macro_f1_original_sources"] = orig["macro_f1"]
            if model == entry.get("serve"):  # where the served model's test errors come from
                by_source = accuracy_by_source(files, task.ids("test"), y_test, pred)
                if by_source:
                    m["test_by_source"] = by_source
            if len(y_val):
                val_pred = predict(task.ids("val"))
                val = ev.scores(y_val, val_pred)
                m["val_accuracy"], m["val_macro_f1"] = val["accuracy"], val["macro_f1"]
            if "cv_macro_f1" in info:  # best_params: manifest.json and MLflow (not metrics)
                m["cv_macro_f1"] = info["cv_macro_f1"]
            if "held_out_source" in info:  # what serve_model: auto_held_out_source picked by
                m["held_out_source_train"] = info["held_out_source"]
                m["held_out_source_train_mean"] = info["held_out_source_mean"]
            for key in ("check_sources_recall", "out_of_source_score"):
                if key in info:
                    m[key] = info[key]
            if "class_prior" in info:  # lone-source prior and its held-out false-claim rates
                m["class_prior"] = info["class_prior"]
            cm = ev.confusion(y_test, pred, task.classes)  # full table: plots CSV and PNG
            fig_path = fig_dir / f"confusion_{name}_{model}.png"
            fig = confusion_figure(cm, task.classes, f"{name} / {model} (test songs)")
            save_figure(fig, fig_path)
            import matplotlib.pyplot as plt

            plt.close(fig)
            figures[f"{name}/{model}"] = f"figures/classifiers/{fig_path.name}"
            _write_csv(ev.confusion_rows(y_test, pred), plot_dir / f"{name}_{model}.csv")
            _log_eval(run_ids.get(model, {}).get("run_id"), params, m, fig_path)
            res["models"][model] = m
            log(
                f"{name}/{model}: test accuracy {m['accuracy']:.3f} macro-F1 "
                f"{m['macro_f1']:.3f}" + (f" F0.5 {m['f05']:.3f}" if "f05" in m else "")
            )
        scored = {k: v for k, v in res["models"].items() if "accuracy" in v}
        if scored:  # "best" looks at test scores (reporting); "selected" only at validation
            res["best"] = max(scored, key=lambda k: (scored[k]["macro_f1"], scored[k]["accuracy"]))
            res["selected"] = max(scored, key=lambda k: _selection_key(scored[k]))
        metrics["tasks"][name] = res
    return metrics, figures


def _selection_key(m: dict[str, Any]) -> tuple[float, float]:
    """Validation macro-F1, then CV macro-F1; a score a model lacks (a blend has no CV
    score: None) ranks lowest instead of failing the comparison when validation ties."""

    def score(key: str) -> float:
        return -1.0 if m.get(key) is None else float(m[key])

    return score("val_macro_f1"), score("cv_macro_f1")


def accuracy_by_source(
    files: pd.DataFrame, ids: list[str], y: np.ndarray, pred: np.ndarray
) -> dict[str, dict[str, Any]]:
    """Songs and accuracy per source of the test songs ``ids`` (true ``y``, predicted
    ``pred``): a genre's errors often sit in one source; {} without a source column or
    with one source only (nothing to tell apart)."""
    if "source" not in files.columns:
        return {}
    src = files.set_index("file_id")["source"].astype(str).reindex(ids).to_numpy()
    if len(set(src)) < 2:
        return {}
    genre = pd.Series(y, dtype=object)
    out = {}
    for source in sorted(set(src)):
        mask = src == source
        out[source] = {
            "genre": str(genre[mask].mode().iloc[0]),
            "n": int(mask.sum()),
            "accuracy": float((pred[mask] == y[mask]).mean()),
        }
    return out


def _original_mask(files: pd.DataFrame, ids: list[str], sources: Any) -> np.ndarray | None:
    """Which of songs ``ids`` come from ``sources`` (the first datasets); None when that
    says nothing new (no sources given, no source column, or none / all of the songs)."""
    if not sources or "source" not in files.columns:
        return None
    src = files.set_index("file_id")["source"].astype(str)
    mask = src.reindex(ids).isin([str(s) for s in sources]).to_numpy()
    return mask if 0 < mask.sum() < len(mask) else None


def _write_csv(df: pd.DataFrame, path: Path) -> None:

    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False)


def _log_eval(run_id: str | None, params: Any, m: dict[str, Any], fig_path: Path) -> None:
    """Test metrics and the confusion matrix as an evaluation run nested under the training run."""
    if not run_id:
        return
    import mlflow

    with tracking.evaluation_run(params, CONCERN, run_id, "evaluation") as run:
        if run is None:
            return
        tracking.log_metrics(
            {f"test_{k}": v for k, v in m.items() if k in ("accuracy", "macro_f1", "f05")}
        )
        if "val_accuracy" in m:
            tracking.log_metrics({"val_song_accuracy": m["val_accuracy"]})
        if "test_by_source" in m:
            mlflow.log_dict(m["test_by_source"], "test_by_source.json")
        mlflow.log_artifact(str(fig_path))


def write_blind_folder(files: pd.DataFrame, splits: pd.DataFrame, folder: Path) -> int:
    """Copy the test split's raw MIDI files to ``folder/<genre>/`` (flattened unique names)."""
    test = splits[splits["split"] == "test"].merge(files[["file_id", "path"]], on="file_id")
    for row in test.itertuples():
        target = folder / str(row.genre) / str(row.file_id).replace("/", "__")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(row.path, target)
    return len(test)


def blind_test(
    files: pd.DataFrame, splits: pd.DataFrame, folder: Path, model_dir: Path
) -> dict[str, Any]:
    """The test split's files copied to ``folder`` (``write_blind_folder``) and scored by the
    served genre model from ``model_dir`` as any user's folder would be (``evaluate_blind``,
    without the per-file predictions), or ``{"skipped": why}``. A function of its arguments:
    the evaluate stage runs it in its worker process."""
    with atomic_dir(folder) as tmp:
        n = write_blind_folder(files, splits, tmp)
    try:
        blind = evaluate_blind(folder, load_served(model_dir))
    except FileNotFoundError as exc:  # serving.ModelsMissing too
        return {"skipped": str(exc)}
    blind.pop("predictions", None)
    blind["folder"] = str(folder)
    print(f"blind test: {n} files, accuracy {blind['overall']['accuracy']}")
    return blind


def load_manifest(model_dir: Path) -> dict[str, Any]:
    return json.loads((model_dir / "manifest.json").read_text())
