"""How the served genre model fares off its home ground: re-encoded test songs, held-out
sources, and what it relies on (permutation importance), next to an all-features model.

The all-features model is the served model's estimator with the same hyperparameters fitted
on every column of the feature table (file artifacts included): the "before" of the
robustness work. Held-out-source validation refits the model on every training-split song
except one source's (plus re-encoded copies of those songs, as training does) and scores
that source's training-split songs: the train stage's own numbers, reused here. (The same
table for the all-features model: ``make tune-genre ARGS='classifier.feature_set=all
--held-out'``; refitting it here cost the pipeline three minutes.)
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import joblib
import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from sklearn.base import clone
from sklearn.ensemble import VotingClassifier
from sklearn.frozen import FrozenEstimator
from sklearn.inspection import permutation_importance

from midiml.classify.copies import song_ids
from midiml.classify.pipelines import (
    FittedModel,
    apply_prior,
    feature_columns,
    feature_matrix,
    with_copies,
)
from midiml.classify.source_weighting import fit_weighted, song_sources, training_weights
from midiml.classify.words_model import MusicAndWords, as_text, model_input
from midiml.represent.features import WORDS_COLUMN, extract_features
from midiml.represent.perturb import PERTURBATIONS, perturb_songs

SongsPredictor = Callable[[pd.DataFrame, list[str]], np.ndarray]  # (notes, ids) -> labels


def fresh_estimator(fitted: FittedModel) -> Any:
    """An unfitted copy of the served model (a vote's members unfrozen)."""
    return _unfrozen(fitted.pipeline)


def _unfrozen(pipe: Any) -> Any:
    pipe = pipe.estimator if isinstance(pipe, FrozenEstimator) else pipe
    if isinstance(pipe, MusicAndWords):
        return MusicAndWords(_unfrozen(pipe.music), clone(pipe.words), pipe.weight)
    if isinstance(pipe, VotingClassifier):
        members = [(n, _unfrozen(e)) for n, e in pipe.estimators]
        return VotingClassifier(members, voting="soft")
    return clone(pipe)


def leaves(pipe: Any, columns: list[str]) -> list[tuple[Any, list[str]]]:
    """The unfitted models whose probabilities ``pipe`` (on ``columns``) averages, each with
    its own columns: a blend's music models and words model, a vote's members, or ``pipe``.

    Refitted one by one, a fold's leaf is shared by every model that holds it: the vote's
    members are the single models themselves, the blend holds the vote, and the blend on
    all columns holds the same words model as the served one."""
    pipe = pipe.estimator if isinstance(pipe, FrozenEstimator) else pipe
    if isinstance(pipe, MusicAndWords):
        return [*leaves(pipe.music, columns[:-1]), (clone(pipe.words), [WORDS_COLUMN])]
    if isinstance(pipe, VotingClassifier) and pipe.weights is None:
        return [leaf for _, e in pipe.estimators for leaf in leaves(e, columns)]
    return [(clone(pipe), list(columns))]


def combined(pipe: Any, probas: Iterator[np.ndarray]) -> np.ndarray:
    """``pipe``'s probabilities from its leaves' (``leaves`` order), with the arithmetic of
    ``MusicAndWords`` and ``VotingClassifier`` themselves, so a refit by leaves gives what
    refitting the whole model gives."""
    pipe = pipe.estimator if isinstance(pipe, FrozenEstimator) else pipe
    if isinstance(pipe, MusicAndWords):
        music = combined(pipe.music, probas)
        w = float(pipe.weight)
        return (1 - w) * music + w * next(probas)
    if isinstance(pipe, VotingClassifier) and pipe.weights is None:
        return np.average(np.asarray([combined(e, probas) for _, e in pipe.estimators]), axis=0)
    return next(probas)


def leaf_input(frame: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """A leaf's input: the words as text, or the numeric columns as floats."""
    if columns == [WORDS_COLUMN]:
        return as_text(frame[WORDS_COLUMN])
    return model_input(frame, columns)


def _fit_proba(
    estimator: Any,
    X: np.ndarray,  # noqa: N803
    y: np.ndarray,
    X_test: np.ndarray,  # noqa: N803
    sample_weight: np.ndarray | None = None,
) -> Any:
    """Fit ``estimator`` (rows weighted by ``sample_weight`` when given) and return (its
    classes, probabilities of ``X_test``), or the first line of the error when the data
    cannot be fitted (e.g. a class too small for the calibrated SVM's inner folds). A
    function of its arguments only, so that held-out refits can run in parallel processes."""
    try:
        est = fit_weighted(estimator, X, y, sample_weight)
    except ValueError as exc:
        return str(exc).splitlines()[0]
    return list(est.classes_), est.predict_proba(X_test)


# loky (joblib's process pool) replaces a worker whose memory grew by more than 300 MB
# between two jobs, and says so with "A worker stopped while some jobs were given to the
# executor ... memory leak" (joblib#883). The pending jobs run on the new worker and the
# results are the same; the re-encodings' note tables grow workers that far. The pool is
# reused, so the notice can surface in whichever parallel call comes next: it is silenced
# around the whole robustness evaluation, and around the held-out refits of the train stage.
_WORKER_RECYCLED = "A worker stopped while some jobs were given to the executor"


@contextlib.contextmanager
def _quiet_worker_recycling() -> Iterator[None]:
    """Silence loky's warning about a worker it recycled on purpose (and only that one)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_WORKER_RECYCLED, category=UserWarning)
        yield


def refit_all(jobs: list[tuple], n_jobs: int = 1) -> list:
    """``_fit_proba`` of every (estimator, X, y, X_test[, sample_weight]), ``n_jobs`` at a
    time (processes; each refit is seeded, so the results do not depend on ``n_jobs``)."""
    if n_jobs == 1 or len(jobs) < 2:
        return [_fit_proba(*job) for job in jobs]
    with _quiet_worker_recycling():
        return Parallel(n_jobs=n_jobs)(delayed(_fit_proba)(*job) for job in jobs)


def _in_order(classes: list[str], known: list[str], proba: np.ndarray) -> np.ndarray:
    """``proba`` (columns ``known``) in ``classes`` order; a class the refit never saw (only
    the held-out source has it) cannot be predicted: probability 0."""
    out = pd.DataFrame(proba, columns=known).reindex(columns=classes, fill_value=0.0)
    return out.to_numpy(np.float64)


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
    None); ids ``<song>#p``, labels kept."""
    n, f = perturb_songs(notes, files, ids, seed=seed, how=how, suffix="#p")
    f["genre"] = labels.loc[song_ids(f["file_id"])].to_numpy()
    return extract_features(n, f, **_feature_kwargs(feature_params)), n


def perturbed_accuracy(
    fitted: FittedModel,
    ids: list[str],
    labels: pd.Series,
    files: pd.DataFrame,
    notes: pd.DataFrame,
    feature_params: dict[str, Any],
    seed: int,
    n_jobs: int = 1,
    cnn: SongsPredictor | None = None,
) -> dict[str, Any]:
    """Accuracy on the songs ``ids`` re-encoded by each perturbation (and by a random mix);
    ``n_jobs`` re-encodings at a time (processes; each draws from its own seed). ``cnn``
    (labels of songs from their notes): its accuracy on the same re-encoded songs too
    (``cnn_accuracy``), the sequence model's robustness beside the served model's."""
    hows = [*PERTURBATIONS, None]
    songs = notes[notes["file_id"].isin(ids)]
    done = Parallel(n_jobs=n_jobs)(
        delayed(reencoded)(songs, files, ids, labels, feature_params, seed + i, how)
        for i, how in enumerate(hows)
    )
    out: dict[str, Any] = {}
    for how, (table, new_notes) in zip(hows, done, strict=True):
        y = labels.loc[song_ids(table["file_id"])].to_numpy(dtype=object)
        pred = fitted.predict(model_input(table, fitted.columns))
        per = {str(g): float((pred[y == g] == g).mean()) for g in sorted(set(y))}
        out[how or "random_mix"] = {"accuracy": float((pred == y).mean()), "per_genre": per}
        if cnn is not None:
            seq = cnn(new_notes, list(table["file_id"]))
            out[how or "random_mix"]["cnn_accuracy"] = float((seq == y).mean())
    return out


def _taught_by_several_sources(src: pd.Series, lab: pd.Series) -> set[str]:
    """Labels whose songs (``src``: their sources, ``lab``: their labels, same index) come
    from two or more sources: only their sources can be held out."""
    n_sources = src.groupby(lab).nunique()
    return set(n_sources[n_sources >= 2].index)


def held_out_folds(
    ids: list[str], labels: pd.Series, source: pd.Series
) -> dict[str, tuple[list[str], list[str]]]:
    """Per source that can be left out (its genre has two or more sources among ``ids``):
    (the songs of every other source, its own songs) among ``ids``. Its songs of a label no
    other source teaches are not tested (a composer of this source alone cannot be right)."""
    src = source.loc[ids].astype(str)
    lab = labels.loc[ids].astype(str)
    multi = _taught_by_several_sources(src, lab)
    return {
        held: (
            [i for i in ids if src[i] != held],
            [i for i in ids if src[i] == held and lab[i] in multi],
        )
        for held in sorted(src[lab.isin(multi)].unique())
    }


def refit_key(held: str, columns: list[str], estimator: Any, power: float) -> tuple:
    """What names one held-out refit of a leaf (``held_out_source_predictions``' ``refits``):
    the source left out, the leaf's columns, its estimator and the source weighting."""
    return (held, tuple(columns), joblib.hash(estimator), float(power))


def held_out_source_predictions(
    fitted: FittedModel,
    table: pd.DataFrame,
    ids: list[str],
    labels: pd.Series,
    source: pd.Series,
    augmented: pd.DataFrame | None = None,
    n_jobs: int = 1,
    columns: list[str] | None = None,
    refits: dict[tuple, Any] | None = None,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per held-out source: (probabilities in ``fitted.classes`` order before any class prior,
    true labels) of its songs among ``ids``, from the model (same estimator and
    hyperparameters as ``fitted``, on ``columns``, by default its own) refitted on the other
    sources' songs plus their re-encoded copies (``augmented`` rows, ids ``<song>#...``).
    Only sources of genres with two or more sources among ``ids`` count: a lone source
    cannot be left out.

    The model is refitted leaf by leaf (``leaves``), its rows weighted by source as it was
    trained (``fitted.source_power``). ``refits`` keeps each leaf's fold result: pass the
    same dict for every model fitted on the same songs (one task's models, say) and a leaf
    already refitted for another model is not refitted again.

    In-split CV rewards what a source's files share (their encoding habits); this rewards
    what carries over to a source never seen, which is what other people's MIDI is.
    """
    refits = {} if refits is None else refits
    lab = labels.loc[ids].astype(str)
    parts = leaves(fitted.pipeline, list(fitted.columns if columns is None else columns))
    t = table.set_index("file_id")
    keys: dict[str, list[tuple]] = {}
    truths: dict[str, np.ndarray] = {}
    todo: dict[tuple, tuple] = {}
    power = float(fitted.source_power)
    for held, (train, test) in held_out_folds(ids, labels, source).items():
        keys[held], truths[held] = [], lab.loc[test].to_numpy(dtype=object)
        inputs: dict[tuple, tuple] = {}  # (X, y, X_test, weights) per column set
        weights = training_weights(train, lab, augmented, source, power)
        for estimator, cols in parts:
            key = refit_key(held, cols, estimator, power)
            keys[held].append(key)
            if key in refits or key in todo:
                continue
            if tuple(cols) not in inputs:
                X, y = with_copies(table, train, lab, augmented, cols, leaf_input)
                inputs[tuple(cols)] = (X, y, leaf_input(t.loc[test], cols), weights)
            todo[key] = (estimator, *inputs[tuple(cols)])
    refits.update(zip(todo, refit_all(list(todo.values()), n_jobs), strict=True))
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    classes = list(fitted.classes)
    for held, held_keys in keys.items():
        results = [refits[k] for k in held_keys]
        if any(isinstance(r, str) for r in results):  # a refit was refused: no score here
            continue
        probas = iter(_in_order(classes, known, proba) for known, proba in results)
        out[held] = (combined(fitted.pipeline, probas), truths[held])
    return out


def held_out_source_scores(
    fitted: FittedModel, predictions: dict[str, tuple[np.ndarray, np.ndarray]]
) -> dict[str, float]:
    """Accuracy on each held-out source (``held_out_source_predictions``), deciding as
    ``fitted`` does (its class prior applied)."""
    classes = np.asarray(fitted.classes, dtype=object)
    return {
        held: float(
            (classes[apply_prior(p, fitted.classes, fitted.class_prior).argmax(axis=1)] == y).mean()
        )
        for held, (p, y) in predictions.items()
    }


def cross_source(
    fitted: FittedModel,
    table: pd.DataFrame,
    files: pd.DataFrame,
    train_ids: list[str],
    augmented: pd.DataFrame | None,
    served: dict[str, float] | None = None,
    n_jobs: int = 1,
) -> dict[str, Any]:
    """The served model's accuracy on each source held out of its training, for genres with
    two or more sources, on training-split songs (as ``serve_model: auto_cross_source``
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
            held_out_source_predictions(fitted, t, ids, labels, source, augmented, n_jobs),
        )
    src = source.loc[ids]
    multi = _taught_by_several_sources(src, labels)
    return {  # NaN: the refit was refused (e.g. a class too small for its folds)
        held: {
            "genre": str(labels[src == held].iloc[0]),
            "n": int((src == held).sum()),
            "served": served.get(held, float("nan")),
        }
        for held in sorted(src[labels.isin(multi)].unique())
    }


def columns_for(fitted: FittedModel, table: pd.DataFrame, feature_set: str) -> list[str]:
    """The columns of ``table`` in ``feature_set`` ("all" lets the file artifacts back in),
    and the words last when ``fitted`` reads them: the same model on another feature set."""
    words = [WORDS_COLUMN] if WORDS_COLUMN in fitted.columns else []
    return [*feature_columns(table, feature_set), *words]


def top_features(
    estimator: Any,
    X: np.ndarray,
    y: np.ndarray,
    columns: list[str],
    seed: int,
    top: int = 10,
    n_jobs: int = 1,
    n_repeats: int = 3,
) -> list[dict[str, Any]]:
    """Permutation importance (drop in accuracy) of the ``top`` most important columns.

    Each column is shuffled ``n_repeats`` times (3, not 5: the whole pipeline stays within
    its 30 minutes on two cores), ``n_jobs`` columns at a time; every column's shuffles are
    drawn from ``seed``, so the result does not depend on ``n_jobs``."""
    res = permutation_importance(
        estimator, X, y, scoring="accuracy", n_repeats=n_repeats, random_state=seed, n_jobs=n_jobs
    )
    order = np.argsort(-res.importances_mean)[:top]
    return [
        {"feature": columns[i], "importance": round(float(res.importances_mean[i]), 4)}
        for i in order
    ]


def importance_before_after(
    fitted: FittedModel,
    table: pd.DataFrame,
    train_ids: list[str],
    y_train: np.ndarray,
    test_ids: list[str],
    y_test: np.ndarray,
    seed: int,
    n_jobs: int = 1,
) -> dict[str, Any]:
    """Top features of the served model and of the same model on every column."""
    all_cols = columns_for(fitted, table, "all")
    before = fresh_estimator(fitted).fit(feature_matrix(table, train_ids, all_cols), y_train)
    return {
        "served": top_features(
            fitted.pipeline,
            feature_matrix(table, test_ids, fitted.columns),
            y_test,
            fitted.columns,
            seed,
            n_jobs=n_jobs,
        ),
        "all_features": top_features(
            before, feature_matrix(table, test_ids, all_cols), y_test, all_cols, seed, n_jobs=n_jobs
        ),
    }


def evaluate_robustness(
    params: Any,
    fitted: FittedModel,
    task: Any,
    files: pd.DataFrame,
    table: pd.DataFrame,
    notes: pd.DataFrame,
    augmented: pd.DataFrame | None,
    feature_params: dict[str, Any],
    n_jobs: int = 1,
    held_out: dict[str, float] | None = None,
    cnn: SongsPredictor | None = None,
) -> dict[str, Any]:
    """Every robustness number of the served genre model (see the module docstring);
    ``held_out``: its held-out-source accuracies from the train stage (``cross_source``);
    ``cnn``: the genre CNN, scored on the same re-encoded songs."""
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
    with _quiet_worker_recycling():
        return out | {
            "perturbed": perturbed_accuracy(
                fitted, test_ids, task.labels, files, notes, feature_params, seed, n_jobs, cnn
            ),
            "cross_source": cross_source(
                fitted, table, files, task.ids("train"), augmented, held_out, n_jobs
            ),
            "importance": importance_before_after(
                fitted, table, task.ids("train"), task.y("train"), test_ids, y_test, seed, n_jobs
            ),
        }
