"""How the served genre model fares off its home ground: re-encoded test songs, held-out
sources, and what it relies on (permutation importance), next to an all-features model.

The all-features model is the served model's estimator with the same hyperparameters fitted
on every column of the feature table (file artifacts included): the "before" of the
robustness work. Held-out-source validation refits the model on every training-split song
except one source's (plus re-encoded copies of those songs, as training does) and scores
that source's training-split songs: the train stage's own numbers, reused here. (The same
table for the all-features model: ``dvc exp run -S
classifier.feature_set=all``; refitting it here cost the pipeline three minutes.)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pandas as pd
from joblib import Parallel, delayed

from midiml.classify.copies import song_ids
from midiml.classify.held_out import (
    _quiet_worker_recycling,
    held_out_folds,
    held_out_source_predictions,
    held_out_source_scores,
)
from midiml.classify.importance import importance_before_after
from midiml.classify.pipelines import FittedModel, feature_matrix
from midiml.classify.source_weighting import song_sources
from midiml.classify.words_model import model_input
from midiml.represent.features import WORDS_COLUMN, extract_features
from midiml.represent.perturb import PERTURBATIONS, perturb_songs

SongsPredictor = Callable[[pd.DataFrame, list[str]], np.ndarray]  # (notes, ids) -> labels


def _feature_kwargs(feature_params: dict[str, Any]) -> dict[str, Any]:
    keys = ("onset_resolution", "grid_tolerance", "onset_divisors")
    return {k: feature_params[k] for k in keys if k in feature_params}


def reencoded(
    notes: pd.DataFrame,
    files: pd.DataFrame,
    ids: list[str],
    labels: pd.Series,
    feature_params: dict[str, Any],
    seed: int,
    how: str | None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Feature rows and notes of the songs ``ids`` re-encoded by ``how`` (a random mix when
    None); ids ``<song>#copy``, labels kept."""
    n, f = perturb_songs(notes, files, ids, seed=seed, how=how, suffix="#copy")
    f["genre"] = labels.loc[song_ids(f["file_id"])].to_numpy()
    return extract_features(n, f, **_feature_kwargs(feature_params)), n


def iter_reencoded(
    ids: list[str],
    labels: pd.Series,
    files: pd.DataFrame,
    notes: pd.DataFrame,
    feature_params: dict[str, Any],
    seed: int,
    n_jobs: int = 1,
) -> Iterator[tuple[str, tuple[pd.DataFrame, pd.DataFrame]]]:
    """The songs ``ids`` re-encoded by each perturbation and by a random mix
    (``"random_mix"``): (feature rows, notes) per re-encoding, ``n_jobs`` at a time
    (processes; each draws from its own seed), yielded in order as the workers finish them, so
    the caller can write one while the next are drawn. They do not depend on any model: stage
    ``reencoded_test_songs`` writes them once for every model and the CNN to be scored on."""
    hows = [*PERTURBATIONS, None]
    songs = notes[notes["file_id"].isin(ids)]
    done = Parallel(n_jobs=n_jobs, return_as="generator")(
        delayed(reencoded)(songs, files, ids, labels, feature_params, seed + i, how)
        for i, how in enumerate(hows)
    )
    for how, pair in zip(hows, done, strict=True):
        yield how or "random_mix", pair


def reencoded_scores(
    predict: Callable[[pd.DataFrame, pd.DataFrame], np.ndarray],
    copies: dict[str, tuple[pd.DataFrame, pd.DataFrame]],
    labels: pd.Series,
    per_genre: bool = True,
) -> dict[str, Any]:
    """Accuracy of ``predict`` ((feature rows, notes) -> labels of the rows) on each
    re-encoding of ``copies`` (``iter_reencoded``), with the recall of every genre."""
    out: dict[str, Any] = {}
    for how, (table, new_notes) in copies.items():
        y = labels.loc[song_ids(table["file_id"])].to_numpy(dtype=object)
        pred = predict(table, new_notes)
        out[how] = {"accuracy": float((pred == y).mean())}
        if per_genre:
            out[how]["per_genre"] = {
                str(g): float((pred[y == g] == g).mean()) for g in sorted(set(y))
            }
    return out


def reencoded_accuracy(
    fitted: FittedModel,
    ids: list[str],
    labels: pd.Series,
    files: pd.DataFrame,
    notes: pd.DataFrame,
    feature_params: dict[str, Any],
    seed: int,
    n_jobs: int = 1,
    cnn: SongsPredictor | None = None,
    copies: dict[str, tuple[pd.DataFrame, pd.DataFrame]] | None = None,
) -> dict[str, Any]:
    """Accuracy on the songs ``ids`` re-encoded by each perturbation (and by a random mix;
    ``copies``: those re-encodings when already made). ``cnn`` (labels of songs from their
    notes): its accuracy on the same re-encoded songs too (``cnn_accuracy``), the sequence
    model's robustness beside the served model's."""
    if copies is None:
        copies = dict(iter_reencoded(ids, labels, files, notes, feature_params, seed, n_jobs))
    out = reencoded_scores(
        lambda table, _: fitted.predict(model_input(table, fitted.columns)), copies, labels
    )
    if cnn is not None:
        seq = reencoded_scores(
            lambda table, n: cnn(n, list(table["file_id"])), copies, labels, per_genre=False
        )
        for how, r in seq.items():
            out[how]["cnn_accuracy"] = r["accuracy"]
    return out


def held_out_sources(
    fitted: FittedModel,
    table: pd.DataFrame,
    files: pd.DataFrame,
    train_ids: list[str],
    copies: pd.DataFrame | None,
    served: dict[str, float] | None = None,
    n_jobs: int = 1,
) -> dict[str, Any]:
    """The served model's accuracy on each source held out of its training, for genres with
    two or more sources, on training-split songs (as ``serve_model: auto_held_out_source``
    scores them).

    ``served``: those accuracies as the train stage computed them (manifest
    ``held_out_source``: the numbers the model was served by); without them the model is
    refitted here, ``n_jobs`` refits at a time."""
    source = song_sources(files)
    t = table[table["file_id"].isin(set(train_ids) & set(source.index))].reset_index(drop=True)
    ids = list(t["file_id"])
    labels = pd.Series(t["genre"].astype(str).to_numpy(), index=ids)
    if served is None:
        served = held_out_source_scores(
            fitted,
            held_out_source_predictions(fitted, t, ids, labels, source, copies, n_jobs),
        )
    src = source.loc[ids]
    return {  # NaN: the refit was refused (e.g. a class too small for its folds)
        held: {
            "genre": str(labels[src == held].iloc[0]),
            "n": int((src == held).sum()),
            "served": served.get(held, float("nan")),
        }
        for held in held_out_folds(ids, labels, source)
    }


def evaluate_robustness(
    params: Any,
    fitted: FittedModel,
    task: Any,
    files: pd.DataFrame,
    table: pd.DataFrame,
    notes: pd.DataFrame,
    copies: pd.DataFrame | None,
    feature_params: dict[str, Any],
    n_jobs: int = 1,
    held_out: dict[str, float] | None = None,
    cnn: SongsPredictor | None = None,
    test_copies: dict[str, tuple[pd.DataFrame, pd.DataFrame]] | None = None,
    cnn_scores: dict[str, Any] | None = None,
    log: Callable[[str], Any] = print,
    importance: Callable[[], dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Every robustness number of the served genre model (see the module docstring);
    ``held_out``: its held-out-source accuracies from the selection (``held_out_sources``);
    ``cnn``: the genre CNN, scored on the same re-encoded songs, or ``cnn_scores``, those
    scores as its own stage computed them (``cnn_fit.cnn_robustness``); ``test_copies``:
    the re-encoded test songs when already made (``iter_reencoded``); ``importance``:
    the permutation importance's result when computed elsewhere (``served_importance``)."""
    import time

    seed = int(params.seed)
    test_ids, y_test = task.ids("test"), task.y("test")
    clean = fitted.predict(feature_matrix(table, test_ids, fitted.columns))
    out: dict[str, Any] = {
        "model": fitted.model,
        "columns": list(fitted.columns),
        "words_column": WORDS_COLUMN if WORDS_COLUMN in fitted.columns else None,
        "source_power": float(fitted.source_power),
        "genres": list(task.classes),
        "clean_accuracy": float((clean == y_test).mean()),
    }
    if cnn is not None:
        out["cnn_clean_accuracy"] = float((cnn(notes, test_ids) == y_test).mean())
    elif cnn_scores:
        out["cnn_clean_accuracy"] = float(cnn_scores["clean_accuracy"])
    start = time.perf_counter()
    with _quiet_worker_recycling():
        scores = reencoded_accuracy(
            fitted,
            test_ids,
            task.labels,
            files,
            notes,
            feature_params,
            seed,
            n_jobs,
            cnn,
            test_copies,
        )
        for how, acc in ((cnn_scores or {}).get("reencoded") or {}).items():
            scores[how]["cnn_accuracy"] = float(acc)
        log(f"robustness: re-encoded test songs scored ({time.perf_counter() - start:.1f} s)")
        start = time.perf_counter()
        across = held_out_sources(fitted, table, files, task.ids("train"), copies, held_out, n_jobs)
        log(f"robustness: held-out sources ({time.perf_counter() - start:.1f} s)")
        start = time.perf_counter()
        if importance is None:
            imp = params.classifier.get("importance") or {}
            drops = importance_before_after(
                fitted,
                table,
                task.ids("train"),
                task.y("train"),
                test_ids,
                y_test,
                seed,
                int(imp.get("n_repeats", 3)),
                bool(imp.get("all_features", False)),
            )
        else:
            drops = importance()
        log(f"robustness: permutation importance ({time.perf_counter() - start:.1f} s)")
    return out | {"reencoded": scores, "held_out_source": across, "importance": drops}
