"""Held-out-source validation: a model refitted without one source, scored on that source.

In-split CV rewards what a source's files share (their encoding habits); this rewards what
carries over to a source never seen, which is what other people's MIDI is. A model is
refitted member by member (``served.members``: a blend's music models and words model, a
vote's members); each member's refits are a value of their own (``leaf_held_out``), so a
stage that fits one model also computes its held-out refits, and the vote and the blend are
combined from their members' results by the served tree itself (``combine_leaves``,
``served.combined_proba``) without refitting anything.
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
from sklearn.base import BaseEstimator, clone
from sklearn.model_selection import LeaveOneGroupOut

from midiml.classify.lone_source import apply_prior
from midiml.classify.ngram_counts import counted_vectorizers
from midiml.classify.pipelines import FittedModel, with_copies
from midiml.classify.served import combined_proba, members, unfrozen
from midiml.classify.source_weighting import fit_weighted, source_genres, training_weights
from midiml.classify.words_model import as_text, model_input
from midiml.represent.features import WORDS_COLUMN

# one leaf's refits: source -> (classes the refit knew, probabilities) or the refusal's reason
LeafRefits = dict[str, Any]


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
    with counted_vectorizers(estimator):  # texts given as their counted rows (words model)
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


def _taught_by_several_sources(src: pd.Series, lab: pd.Series) -> set[str]:
    """Labels whose songs (``src``: their sources, ``lab``: their labels, same index) come
    from two or more sources: only their sources can be held out."""
    n_sources = src.groupby(lab).nunique()
    return set(n_sources[n_sources >= 2].index)


class LeaveOneSourceOut(LeaveOneGroupOut):
    """scikit-learn's leave-one-group-out with ``groups`` = each song's source, tested only on
    what another source taught: a fold's test rows keep the labels two or more sources have
    (a composer of the left-out source alone cannot be right), and a source with no such row
    (a genre taught by that source alone: nothing else could teach it) has no fold.
    ``unscored`` says which sources have none and why."""

    def split(self, X: Any, y: Any = None, groups: Any = None) -> Iterator[tuple]:  # noqa: N803
        """(train, test) row indices per source that can be scored, in source-name order."""
        testable = _testable(y, groups)
        if len(np.unique(np.asarray(groups, dtype=str))) < 2:  # LeaveOneGroupOut needs two
            return
        for train, test in super().split(X, y, groups):
            if testable[test].any():
                yield train, test[testable[test]]

    def get_n_splits(self, X: Any = None, y: Any = None, groups: Any = None) -> int:  # noqa: N803
        """How many sources can be scored (``split``'s folds)."""
        return len(np.unique(np.asarray(groups, dtype=str)[_testable(y, groups)]))

    @staticmethod
    def unscored(y: Any, groups: Any) -> dict[str, str]:
        """Per source with no fold: why (its labels are taught by no other source)."""
        src = np.asarray(groups, dtype=str)
        scored = set(src[_testable(y, groups)])
        return {
            s: "no other source teaches its labels: nothing else could have taught it"
            for s in sorted(set(src) - scored)
        }


def _testable(y: Any, groups: Any) -> np.ndarray:
    """Which rows can be tested when their source is left out: their label has two or more
    sources among the rows."""
    lab = pd.Series(np.asarray(y, dtype=str))
    multi = _taught_by_several_sources(pd.Series(np.asarray(groups, dtype=str)), lab)
    return lab.isin(multi).to_numpy()


def held_out_folds(
    ids: list[str], labels: pd.Series, source: pd.Series
) -> dict[str, tuple[list[str], list[str]]]:
    """``LeaveOneSourceOut`` on ``ids`` (groups: their sources), by source name: (the songs
    of every other source, its own songs a refit can be scored on)."""
    src = source.loc[ids].astype(str).to_numpy()
    song = np.asarray(ids, dtype=object)
    folds = LeaveOneSourceOut().split(song, labels.loc[ids].astype(str).to_numpy(), src)
    return {str(src[test[0]]): (list(song[train]), list(song[test])) for train, test in folds}


def refit_key(held: str, columns: list[str], estimator: Any, power: float) -> tuple:
    """What names one held-out refit of a leaf (``held_out_source_predictions``' ``refits``):
    the source left out, the leaf's columns, its estimator and the source weighting. The
    estimator is named by its class and parameters (``_described``), not by its pickle,
    which differs with the objects it shares with the tree it came from."""
    return (held, tuple(columns), joblib.hash(_described(estimator)), float(power))


def _described(value: Any) -> Any:
    """An estimator as plain values: its class and parameters, nested estimators alike."""
    if isinstance(value, BaseEstimator):
        params = value.get_params(deep=False)
        return (type(value).__qualname__, {k: _described(v) for k, v in sorted(params.items())})
    if isinstance(value, list | tuple):
        return [_described(v) for v in value]
    return value


def held_out_source_predictions(
    fitted: FittedModel,
    table: pd.DataFrame,
    ids: list[str],
    labels: pd.Series,
    source: pd.Series,
    copies: pd.DataFrame | None = None,
    n_jobs: int = 1,
    columns: list[str] | None = None,
    refits: dict[tuple, Any] | None = None,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per held-out source: (probabilities in ``fitted.classes`` order before any class prior,
    true labels) of its songs among ``ids``, from the model (same estimator and
    hyperparameters as ``fitted``, on ``columns``, by default its own) refitted on the other
    sources' songs plus their re-encoded copies (``copies``: feature rows, ids ``<song>#...``).
    Only sources of genres with two or more sources among ``ids`` count: a lone source
    cannot be left out.

    The model is refitted member by member (``served.members`` of its tree, unfitted), its
    rows weighted by source as it was trained (``fitted.source_power``). ``refits`` keeps
    each member's fold result: pass the same dict for every model fitted on the same songs
    (one task's models, say) and a member already refitted for another model is not
    refitted again.

    In-split CV rewards what a source's files share (their encoding habits); this rewards
    what carries over to a source never seen, which is what other people's MIDI is.
    """
    refits = {} if refits is None else refits
    lab = labels.loc[ids].astype(str)
    cols = list(fitted.columns if columns is None else columns)
    parts = members(unfrozen(fitted.pipeline))
    t = table.set_index("file_id")
    keys: dict[str, dict[str, tuple]] = {}
    truths: dict[str, np.ndarray] = {}
    todo: dict[tuple, tuple] = {}
    power = float(fitted.source_power)
    for held, (train, test) in held_out_folds(ids, labels, source).items():
        keys[held], truths[held] = {}, lab.loc[test].to_numpy(dtype=object)
        weights = training_weights(train, lab, copies, source, power)
        inputs: dict[tuple, tuple] = {}  # (X, y, X_test) per column set
        for name, member in parts.items():
            own = member.columns_of(cols)
            key = refit_key(held, own, member, power)
            keys[held][name] = key
            if key in refits or key in todo:
                continue
            if tuple(own) not in inputs:
                X, y = with_copies(table, train, lab, copies, own)
                inputs[tuple(own)] = (X, y, model_input(t.loc[test], own))
            todo[key] = (member, *inputs[tuple(own)], weights)
    refits.update(zip(todo, refit_all(list(todo.values()), n_jobs), strict=True))
    leaf_refits = {name: {} for name in parts}
    for held, held_keys in keys.items():
        for name, key in held_keys.items():
            leaf_refits[name][held] = refits[key]
    return combine_leaves(fitted, leaf_refits, truths)


def held_out_source_scores(
    fitted: FittedModel,
    predictions: dict[str, tuple[np.ndarray, np.ndarray]],
    prior: dict[str, float] | None = None,
) -> dict[str, float]:
    """Accuracy on each held-out source (``held_out_source_predictions``), deciding as
    ``fitted`` does with ``prior`` (by default its own class prior)."""
    classes = np.asarray(fitted.classes, dtype=object)
    prior = fitted.class_prior if prior is None else prior
    return {
        held: float((classes[apply_prior(p, fitted.classes, prior).argmax(axis=1)] == y).mean())
        for held, (p, y) in predictions.items()
    }


def leaf_held_out(
    estimator: Any,
    columns: list[str],
    table: pd.DataFrame,
    ids: list[str],
    labels: pd.Series,
    source: pd.Series,
    copies: pd.DataFrame | None,
    power: float,
    n_jobs: int = 1,
    as_rows: Callable[[np.ndarray], Any] | None = None,
) -> tuple[LeafRefits, dict[str, np.ndarray]]:
    """One leaf's held-out refits: per held-out source (``held_out_folds`` of ``ids``),
    ``estimator`` (unfitted) fitted on ``columns`` of the other sources' songs and their
    re-encoded copies (rows weighted by source with ``power``) -> (classes, probabilities
    of the held-out songs), or the reason it was refused; and the held-out songs' labels.
    ``as_rows`` turns each input into what the refits take (the words model: the texts'
    counted rows, ``ngram_counts.CountedRows``)."""
    as_rows = as_rows or (lambda x: x)
    lab = labels.loc[ids].astype(str)
    t = table.set_index("file_id")
    jobs, truths = {}, {}
    for held, (train, test) in held_out_folds(ids, labels, source).items():
        truths[held] = lab.loc[test].to_numpy(dtype=object)
        X, y = with_copies(table, train, lab, copies, columns, leaf_input)
        weights = training_weights(train, lab, copies, source, power)
        X_test = leaf_input(t.loc[test], columns)  # noqa: N806
        jobs[held] = (clone(estimator), as_rows(X), y, as_rows(X_test), weights)
    return dict(zip(jobs, refit_all(list(jobs.values()), n_jobs), strict=True)), truths


def combine_leaves(
    fitted: FittedModel, leaf_refits: dict[str, LeafRefits], truths: dict[str, np.ndarray]
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``held_out_source_predictions`` of ``fitted`` from its members' refits (member name ->
    its ``LeafRefits``), put through ``fitted``'s own tree (``served.combined_proba``): per
    held-out source, (probabilities in ``fitted.classes`` order before any class prior, true
    labels); a source where a member's refit was refused has no entry."""
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    classes = list(fitted.classes)
    names = list(members(fitted.pipeline))
    for held, truth in truths.items():
        results = {n: leaf_refits[n].get(held, "missing") for n in names}
        if any(isinstance(r, str) for r in results.values()):
            continue
        probas = {n: _in_order(classes, known, proba) for n, (known, proba) in results.items()}
        out[held] = (combined_proba(fitted.pipeline, probas, classes), truth)
    return out


def out_of_source_by_genre(
    held: dict[str, Any], genre_of: dict[str, str], loops_recall: Any, loops_genre: str
) -> dict[str, Any]:
    """Per genre, the mean accuracy of its held-out sources (``held``: source -> accuracy),
    or for the genre with one source, which has no second source to hold out, the made-up
    loops' recall. Floats, or arrays (one entry per candidate model) alike; the
    out-of-source score is the mean of these."""
    per_genre: dict[str, list[Any]] = {}
    for src, acc in held.items():
        per_genre.setdefault(str(genre_of[src]), []).append(acc)
    means = {g: np.mean(v, axis=0) for g, v in per_genre.items()}
    if loops_genre not in means:  # the one-source genre has no held-out source: loops stand in
        means[loops_genre] = loops_recall
    return means


def out_of_source_score(
    fitted: FittedModel,
    held_out: dict[str, Any],
    files: pd.DataFrame,
    loops: pd.DataFrame,
    loops_genre: str,
) -> dict[str, Any]:
    """What ``serve_model: auto_held_out_source`` picks by: the mean over genres of accuracy on
    music from no training source: a genre with two or more sources scores its held-out
    sources (their mean), the one-source genre its made-up loops. Held-out sources alone
    cannot see the one-source genre, and a model sure of every source's habits
    (probabilities near 0 or 1, which no class prior moves) would win on them and miss
    other producers' loops."""
    pred = fitted.predict(model_input(loops, fitted.columns))
    recall = float((pred == loops_genre).mean())
    held = {src: float(acc) for src, acc in held_out["held_out_source"].items()}
    means = out_of_source_by_genre(held, source_genres(files), recall, loops_genre)
    return {
        "check_sources_recall": recall,
        "out_of_source_by_genre": {g: float(v) for g, v in means.items()},
        "out_of_source_score": float(np.mean(list(means.values()))),
    }
