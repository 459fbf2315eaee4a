"""Train and evaluate every (task, model) pair: what the two classifier stages call.

Training writes one file per model into ``models/classifiers/<task>/`` and a
``manifest.json`` (classes, chosen hyperparameters, CV score, MLflow run id, which model
the CLI serves). Evaluation re-derives the same task labels, predicts the validation and
test songs, and resumes each model's MLflow run to add test metrics and the confusion
matrix, so MLflow holds one run per task and model.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from midiml import tracking
from midiml.classify.cnn import PianoRollCNNClassifier, load_cnn, predict_songs
from midiml.classify.copies import kept_copies, song_ids
from midiml.classify.lone_source import choose_prior, lone_source_classes
from midiml.classify.made_up_loops import LOOP_GENRE, STYLES, write_loop_pack
from midiml.classify.pipelines import (
    TASKS,
    VOTE,
    VOTE_AND_WORDS,
    FittedModel,
    TaskData,
    TaskSkipped,
    build_task,
    feature_matrix,
    fit_feature_model,
    fit_vote,
    fit_vote_and_words,
    load_model,
    save_model,
)
from midiml.classify.robustness import (
    SongsPredictor,
    held_out_source_predictions,
    held_out_source_scores,
)
from midiml.classify.serving import features_for
from midiml.classify.source_weighting import song_sources, source_genres
from midiml.classify.words_model import model_input
from midiml.data.midi import read_user_file
from midiml.evaluate import classification as ev
from midiml.io import atomic_path, save_figure
from midiml.represent.features import extract_features
from midiml.represent.perturb import perturb_songs
from midiml.represent.pianoroll import RollSpec, song_rolls

CONCERN = "classification"
AUTO_CROSS_SOURCE = "auto_cross_source"  # serve_model: pick by held-out-source accuracy


def _plain(cfg: Any) -> Any:
    from omegaconf import DictConfig, ListConfig, OmegaConf

    return (
        OmegaConf.to_container(cfg, resolve=True)
        if isinstance(cfg, DictConfig | ListConfig)
        else cfg
    )


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


def read_tables(
    with_notes: bool = True, root: str | Path = "data"
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame | None]:
    """(files, splits, features, notes) as the data stages wrote them; notes only if asked
    (the note table is the large one and only the CNN needs it)."""
    root = Path(root)
    notes = pd.read_parquet(root / "interim/notes.parquet") if with_notes else None
    return (
        pd.read_parquet(root / "interim/files.parquet"),
        pd.read_parquet(root / "interim/splits.parquet"),
        pd.read_parquet(root / "features/features.parquet"),
        notes,
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
    """Fit every configured model of every task into ``out_dir``; return the manifest."""

    cfg, seed = params.classifier, int(params.seed)
    manifest: dict[str, Any] = {"features": _plain(params.get("features", {})), "tasks": {}}
    cnn_tasks = list(cfg.cnn.tasks) if cfg.get("cnn") else []
    for name in TASKS:
        if name not in cfg.tasks:
            continue
        try:
            task = build_task(name, files, splits, cfg)
        except TaskSkipped as exc:
            manifest["tasks"][name] = {"skipped": str(exc)}
            log(f"{name}: skipped ({exc})")
            continue
        entry: dict[str, Any] = {
            "classes": task.classes,
            "positive": task.positive,
            "genres": task.genres,
            "models": {},
        }
        (out_dir / name).mkdir(parents=True, exist_ok=True)
        aug_rows = _augmented(params, task, files, notes, log)
        source = song_sources(files)
        if aug_rows is not None:
            entry["augmented_rows"] = len(aug_rows)
        wanted = str(cfg.get("serve_model", "auto"))
        loops = selection_loops(params, task) if wanted == AUTO_CROSS_SOURCE else None
        members: dict[str, Any] = {}
        refits: dict[tuple, Any] = {}  # held-out refits of the task's models, shared by leaf
        vote = [m for m in (cfg.get("vote") or []) if m in cfg.models]
        blends = [VOTE_AND_WORDS] if len(vote) >= 2 and _words_on(cfg, name) else []
        for model in [*cfg.models, *([VOTE] if len(vote) >= 2 else []), *blends]:
            start = time.perf_counter()
            with tracking.run(params, CONCERN, f"{name}/{model}") as run:
                try:
                    if model == VOTE:
                        fitted = fit_vote(
                            task, [members[m] for m in vote if m in members], table, cfg, seed
                        )
                    elif model == VOTE_AND_WORDS:
                        if VOTE not in members:
                            raise TaskSkipped("no vote to blend the words with")
                        fitted = fit_vote_and_words(
                            task, members[VOTE], table, cfg, aug_rows, source
                        )
                    else:
                        fitted = fit_feature_model(task, model, table, cfg, seed, aug_rows, source)
                except TaskSkipped as exc:
                    entry["models"][model] = {"skipped": str(exc)}
                    continue
                members[model] = fitted
                held_out = (
                    _held_out_entry(
                        fitted, task, table, files, aug_rows, cfg, run is not None, refits
                    )
                    if wanted == AUTO_CROSS_SOURCE or _prior_cfg(cfg, name)
                    else {}
                )
                if held_out and loops is not None:
                    held_out |= out_of_source_score(fitted, held_out, files, loops)
                save_model(fitted, out_dir / name / f"{model}.joblib")
                if run is not None:
                    _log_fit(fitted)
                entry["models"][model] = {
                    "kind": "features",
                    "file": f"{name}/{model}.joblib",
                    "best_params": fitted.best_params,
                    "cv_macro_f1": _finite(fitted.cv_macro_f1),
                    "cv_folds": fitted.cv_folds,
                    "run_id": run.info.run_id if run else None,
                } | held_out
            held = entry["models"][model].get("held_out_source_mean")
            oos = entry["models"][model].get("out_of_source_score")
            log(
                f"{name}/{model}: CV macro-F1 {_cv_text(fitted.cv_macro_f1)} "
                + (f"held-out-source accuracy {held:.3f} " if held is not None else "")
                + (f"out-of-source score {oos:.3f} " if oos is not None else "")
                + f"{fitted.best_params} ({time.perf_counter() - start:.1f} s)"
            )
        if name in cnn_tasks:
            entry["models"]["cnn"] = _train_cnn(params, task, files, notes, out_dir, log)
        entry["serve"] = _served_model(entry["models"], wanted, [*cfg.models, VOTE, *blends])
        manifest["tasks"][name] = entry
    return manifest


def augmented_table(
    params: Any,
    ids: list[str],
    files: pd.DataFrame,
    notes: pd.DataFrame,
    copies: dict,
    melody: dict | None = None,
    excerpts: dict | None = None,
    texture: dict | None = None,
) -> pd.DataFrame:
    """Feature rows of random re-encodings of songs ``ids`` (``copies[genre]`` per song,
    ``copies['default']`` for other genres); ids ``<song>#aug<k>``, genre kept. A copy of a
    song of genre g first has its chords played in another texture with probability
    ``texture[g]``, then gets a made-up melody with probability ``melody[g]``.

    ``excerpts`` (``{copies, min_s, max_s}``) adds that many random excerpts of every song
    longer than ``min_s`` (any genre; ids ``<song>#ex<k>``): other people's files are often
    excerpts and loops, not whole pieces."""

    seed = int(params.seed)
    genre = files.set_index("file_id")["genre"].astype(str)
    most = max(int(v) for v in copies.values())
    melody = {str(k): float(v) for k, v in (melody or {}).items()}
    texture = {str(k): float(v) for k, v in (texture or {}).items()}
    parts_n, parts_f = [], []
    for k in range(most):
        chosen = [i for i in ids if k < int(copies.get(genre[i], copies.get("default", 0)))]
        draw = np.random.default_rng(seed + 2000 + k).random(len(chosen))
        with_melody = {
            i for i, u in zip(chosen, draw, strict=True) if u < melody.get(genre[i], 0.0)
        }
        draw = np.random.default_rng(seed + 4000 + k).random(len(chosen))
        with_texture = {
            i for i, u in zip(chosen, draw, strict=True) if u < texture.get(genre[i], 0.0)
        }
        n, f = perturb_songs(
            notes,
            files,
            chosen,
            seed=seed + 1000 + k,
            suffix=f"#aug{k}",
            melody=with_melody,
            texture=with_texture,
        )
        parts_n.append(n)
        parts_f.append(f)
    ex = dict(excerpts or {})
    if int(ex.get("copies", 0)):
        lo, hi = float(ex.get("min_s", 8.0)), float(ex.get("max_s", 60.0))
        length = files.set_index("file_id")["length_s"].astype(float)
        longer = [i for i in ids if length.get(i, 0.0) > lo]  # shorter ones stay whole
        for k in range(int(ex["copies"])):
            n, f = perturb_songs(
                notes,
                files,
                longer,
                seed=seed + 3000 + k,
                how="crop",
                suffix=f"#ex{k}",
                options={"min_s": lo, "max_s": hi},
            )
            parts_n.append(n)
            parts_f.append(f)
    aug_files = pd.concat(parts_f, ignore_index=True)
    if aug_files.empty:
        return pd.DataFrame()
    aug_files["genre"] = song_ids(aug_files["file_id"]).map(genre)
    fp = _plain(params.get("features", {})) or {}
    kwargs = {k: fp[k] for k in ("onset_resolution", "grid_tolerance", "onset_divisors") if k in fp}
    return extract_features(pd.concat(parts_n, ignore_index=True), aug_files, **kwargs)


def augmented_as_configured(
    params: Any, ids: list[str], files: pd.DataFrame, notes: pd.DataFrame
) -> pd.DataFrame:
    """``augmented_table`` of songs ``ids`` with the copies, melodies, textures and excerpts
    that ``classifier.augment`` asks for (the same rows for training and for evaluation)."""
    aug = params.classifier.augment
    return augmented_table(
        params,
        ids,
        files,
        notes,
        dict(_plain(aug.copies)),
        _plain(aug.get("melody")),
        _plain(aug.get("excerpts")),
        _plain(aug.get("texture")),
    )


def _augmented(
    params: Any,
    task: TaskData,
    files: pd.DataFrame,
    notes: pd.DataFrame | None,
    log,
) -> pd.DataFrame | None:
    """Feature rows of re-encoded training songs for the task, when ``classifier.augment``
    asks (ids ``<song>#aug<k>``)."""

    aug = params.classifier.get("augment")
    if not aug or notes is None or task.name not in list(aug.get("tasks", [])):
        return None
    start = time.perf_counter()
    t = augmented_as_configured(params, task.ids("train"), files, notes)
    if t.empty:
        return None
    log(f"{task.name}: {len(t)} augmented training rows ({time.perf_counter() - start:.1f} s)")
    return t


def _words_on(cfg: Any, task: str) -> bool:
    """Whether ``classifier.words`` asks for the vote-and-words blend of ``task``."""
    words = cfg.get("words")
    return bool(words) and task in list(words.get("tasks") or [])


def _finite(value: float) -> float | None:
    """``value``, or None for NaN (a model without a CV score; JSON has no NaN)."""
    return None if np.isnan(value) else float(value)


def _cv_text(value: float) -> str:
    """A CV score for the training log: three decimals, or "-" for a model without one."""
    return "-" if np.isnan(value) else f"{value:.3f}"


def _prior_cfg(cfg: Any, task: str) -> Any:
    """``classifier.lone_source_prior`` when it applies to ``task``, else None."""
    prior = cfg.get("lone_source_prior")
    return prior if prior and task in list(prior.get("tasks", [])) else None


def selection_loops(params: Any, task: TaskData) -> pd.DataFrame | None:
    """Feature rows of made-up lo-fi loops for choosing the served model, when lo-fi is a
    class of ``task`` (``classifier.made_up_loops``; drawn with ``selection_seed``, so the
    loops the evaluate stage reports stay unseen by the choice)."""
    cfg = params.classifier.get("made_up_loops")
    if not cfg or LOOP_GENRE not in task.classes:
        return None
    seed = int(cfg.get("selection_seed", int(cfg.seed) + 1))
    with tempfile.TemporaryDirectory(prefix="midiml-loops-") as tmp:
        n = int(cfg.n)
        paths = [p for st in STYLES for p in write_loop_pack(Path(tmp) / st, st, n, seed)]
        parsed = [(p.name, read_user_file(p)) for p in paths]
    return features_for(parsed, _plain(params.get("features", {})) or {})


def out_of_source_score(
    fitted: FittedModel, held_out: dict[str, Any], files: pd.DataFrame, loops: pd.DataFrame
) -> dict[str, Any]:
    """What ``serve_model: auto_cross_source`` picks by: the mean over genres of accuracy on
    music from no training source: a genre with two or more sources scores its held-out
    sources (their mean), lo-fi (one source) its made-up loops. Held-out sources alone cannot
    see the one-source genre, and a model sure of every source's habits (probabilities near
    0 or 1, which no class prior moves) would win on them and miss other producers' loops."""
    genre_of = source_genres(files)
    pred = fitted.predict(model_input(loops, fitted.columns))
    recall = float((pred == LOOP_GENRE).mean())
    held = {src: float(acc) for src, acc in held_out["held_out_source"].items()}
    means = out_of_source_by_genre(held, genre_of, recall)
    return {
        "made_up_loops_recall": recall,
        "out_of_source_by_genre": {g: float(v) for g, v in means.items()},
        "out_of_source_score": float(np.mean(list(means.values()))),
    }


def out_of_source_by_genre(
    held: dict[str, Any], genre_of: dict[str, str], loops_recall: Any
) -> dict[str, Any]:
    """Per genre, the mean accuracy of its held-out sources (``held``: source -> accuracy),
    or for lo-fi, which has no second source to hold out, the made-up loops' recall. Floats,
    or arrays (one entry per candidate model, as ``benchmarks/vote_weights.py`` scores many
    weightings at once) alike; the out-of-source score is the mean of these."""
    per_genre: dict[str, list[Any]] = {}
    for src, acc in held.items():
        per_genre.setdefault(str(genre_of[src]), []).append(acc)
    means = {g: np.mean(v, axis=0) for g, v in per_genre.items()}
    if LOOP_GENRE not in means:  # lo-fi has no held-out source: its loops stand in
        means[LOOP_GENRE] = loops_recall
    return means


def _held_out_entry(
    fitted: FittedModel,
    task: TaskData,
    table: pd.DataFrame,
    files: pd.DataFrame,
    aug_rows: pd.DataFrame | None,
    cfg: Any,
    log_mlflow: bool,
    refits: dict[tuple, Any] | None = None,
) -> dict[str, Any]:
    """Held-out-source accuracies of a model on the training split (what
    ``serve_model: auto_cross_source`` picks by), after setting the model's lone-source class
    prior from the same predictions (``classifier.lone_source_prior``); empty when no class
    has two sources. ``refits``: see ``held_out_source_predictions``."""
    source = song_sources(files)
    train = task.ids("train")
    predictions = held_out_source_predictions(
        fitted,
        table,
        train,
        task.labels,
        source,
        aug_rows,
        n_jobs=int(cfg.get("n_jobs", 1)),
        refits=refits,
    )
    if not predictions:
        return {}
    out: dict[str, Any] = {}
    prior_cfg = _prior_cfg(cfg, task.name)
    lone = lone_source_classes(task.labels.loc[train], source) if prior_cfg else []
    if lone:
        choice = choose_prior(
            predictions,
            fitted.classes,
            lone,
            [float(f) for f in prior_cfg.factors],
            float(prior_cfg.max_false_rate),
        )
        fitted.class_prior = choice["prior"]
        out["class_prior"] = choice
    scores = held_out_source_scores(fitted, predictions)
    mean = float(np.mean(list(scores.values())))
    if log_mlflow:
        rates = out.get("class_prior", {}).get("false_rate", {})
        tracking.log_metrics(
            {"held_out_source_mean": mean}
            | {f"class_prior_{c}": f for c, f in (fitted.class_prior or {}).items()}
            | {f"held_out_false_{c}_rate": r for c, r in rates.items()}
        )
    return out | {"held_out_source": scores, "held_out_source_mean": mean}


def _log_fit(fitted: Any) -> None:
    import mlflow

    mlflow.log_params({f"best.{k}": str(v) for k, v in fitted.best_params.items()})
    mlflow.log_params({"task": fitted.task, "model": fitted.model, "cv_folds": fitted.cv_folds})
    if not np.isnan(fitted.cv_macro_f1):
        mlflow.log_metric("cv_macro_f1", fitted.cv_macro_f1)


def cnn_copies(
    params: Any, ids: list[str], files: pd.DataFrame, notes: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """Notes and file rows of ``classifier.cnn.copies`` random re-encodings of each song
    (``perturb.random_reencoding``; ids ``<song>#cnn<k>``), or None for none. The CNN gets
    its own plain copies, not the feature models' (``classifier.augment``: six per lo-fi
    loop, made-up melodies and textures, excerpts): tried, it scored lower on the test songs
    and trained several times longer."""
    n_copies = int(params.classifier.cnn.get("copies", 0))
    if not n_copies:
        return None
    parts = [
        perturb_songs(notes, files, ids, seed=int(params.seed) + 5000 + k, suffix=f"#cnn{k}")
        for k in range(n_copies)
    ]
    return (
        pd.concat([n for n, _ in parts], ignore_index=True),
        pd.concat([f for _, f in parts], ignore_index=True),
    )


def _train_cnn(
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


def serve_rule(entry: dict[str, Any], wanted: str) -> str:
    """The rule that actually picked ``entry["serve"]``: ``auto_cross_source`` falls back to
    ``auto`` when the served model has no held-out-source score (no class has two sources)."""
    served = entry.get("models", {}).get(entry.get("serve"), {})
    if wanted == AUTO_CROSS_SOURCE and "held_out_source_mean" not in served:
        return "auto"
    return wanted


def _served_model(models: dict[str, Any], wanted: str, order: list[str]) -> str | None:
    """The feature model the CLI uses: the configured one, the best by CV on train ("auto"),
    or the best on music from no training source ("auto_cross_source": ``out_of_source_score``
    where made-up loops exist, else mean held-out-source accuracy on train; CV breaking ties;
    plain "auto" when no model has that score, e.g. every class has one source)."""
    feats = {m: v for m, v in models.items() if v.get("kind") == "features"}
    if not feats:
        return None
    if wanted == AUTO_CROSS_SOURCE:
        scored = {m: v for m, v in feats.items() if "held_out_source_mean" in v}
        if scored:
            return max(
                scored,
                key=lambda m: (
                    scored[m].get("out_of_source_score", scored[m]["held_out_source_mean"]),
                    scored[m]["cv_macro_f1"] or 0.0,
                    -order.index(m),
                ),
            )
        wanted = "auto"
    if wanted != "auto":
        if wanted not in feats:
            raise ValueError(f"classifier.serve_model={wanted!r} was not trained")
        return wanted
    # ties go to the model listed first in the config (the simpler ones come first)
    return max(feats, key=lambda m: (feats[m]["cv_macro_f1"] or 0.0, -order.index(m)))


# ---------------------------------------------------------------- evaluation


def song_predictor(
    info: dict[str, Any],
    model_dir: Path,
    table: pd.DataFrame,
    notes: pd.DataFrame | None,
    roll_cfg: Any,
):
    """Load a trained model once; return a function from song ids to predicted labels."""
    if info["kind"] == "features":
        fitted = load_model(model_dir / info["file"])
        return lambda ids: fitted.predict(feature_matrix(table, ids, fitted.columns))

    predict = cnn_predictor(model_dir / info["file"], roll_cfg)
    return lambda ids: predict(notes, ids)


def cnn_predictor(path: Path, roll_cfg: Any) -> SongsPredictor:
    """Load a trained CNN once; return a function from (notes, song ids) to predicted labels:
    any songs' notes, re-encoded ones included."""
    module = load_cnn(path)
    classes = np.asarray(module.hparams.classes, dtype=object)
    return lambda notes, ids: classes[
        predict_songs(module, rolls_for(notes, roll_cfg, ids)).argmax(axis=1)
    ]


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
) -> tuple[dict, dict[str, str]]:
    """Test (and validation) scores of every trained model; figures and plot tables written.

    ``confusion_figure(cm, labels, title)`` draws a confusion matrix (the report's drawing).
    """

    cfg = params.classifier
    roll_cfg = cfg.cnn.roll if cfg.get("cnn") else None
    metrics: dict[str, Any] = {"tasks": {}}
    figures: dict[str, str] = {}
    for name, entry in manifest["tasks"].items():
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
            predict = song_predictor(info, model_dir, table, notes, roll_cfg)
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
            if "held_out_source" in info:  # what serve_model: auto_cross_source picked by
                m["held_out_source_train"] = info["held_out_source"]
                m["held_out_source_train_mean"] = info["held_out_source_mean"]
            for key in ("made_up_loops_recall", "out_of_source_score"):
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
            _log_eval(info.get("run_id"), params, m, fig_path)
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


def load_manifest(model_dir: Path) -> dict[str, Any]:
    return json.loads((model_dir / "manifest.json").read_text())
