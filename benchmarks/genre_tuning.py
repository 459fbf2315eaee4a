"""Try a change to the served genre model in a minute, not a 27-minute `dvc repro`.

After the pipeline has run (``models/classifiers/genre/`` and the data tables exist), this
refits the served model's leaves (each feature model with its tuned hyperparameters, and the
words model) on the training songs plus their re-encoded copies, under Hydra overrides of
the defaults, and scores what the evaluate stage scores: the test split, every re-encoding
of it (represent/perturb.py) and the made-up loops of the selection draw; with
``--held-out`` also each held-out source (training split, as the serving choice sees it),
at the lone-source prior the pipeline would choose for the variant, the out-of-source score
that ``serve_model: auto_cross_source`` chooses by, and every table again at that prior when
it differs from the trained one (column "served, own prior"). The leaves are refitted with
their rows weighed by source as configured (``classifier.source_weighting``). The last
column is the best any weighting of the leaves could do on each table, the weights chosen
on that table (an optimistic bound): a change that does not raise it adds no information
the blend could use.

    python benchmarks/genre_tuning.py                                   # the served model
    python benchmarks/genre_tuning.py classifier.augment.copies.default=2
    python benchmarks/genre_tuning.py classifier.words.weight=0.4 --held-out
    python benchmarks/genre_tuning.py classifier.source_weighting.power=1 --held-out
    python benchmarks/genre_tuning.py classifier.feature_set=all --held-out   # artifacts back in
    python benchmarks/genre_tuning.py --more-songs ../bigger/data    # more training songs

``--more-songs`` answers "would more data help?" on the same test songs: it also trains on
the songs of another run's data folder that this run lacks (a clone with larger
``max_files`` in ``conf/data/full.yaml``, after ``make params`` and ``dvc repro features
split`` there). Grown through the pipeline, the split keeps most songs where they were but
adds the new songs' share to the test (data/split.py); only this keeps the test, its
re-encodings and the loops exactly as they are.

What is slow to make is cached under ``data/tuning/`` by its inputs (re-encoded test songs,
augmented rows per ``classifier.augment``, loops); each run appends its scores to
``data/tuning/results.jsonl``. The feature models' hyperparameters stay as trained (the
grid search is the pipeline's); the words model and its share follow ``classifier.words``
(config-built, not searched). The prior stays as trained unless ``--held-out`` re-chooses
it. Nothing is logged to MLflow. A scratch tool: choose by held-out sources and loops, not
by the test split, before changing ``conf/``.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import itertools
import json
import pickle
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
from hydra.errors import HydraException
from hydra.utils import instantiate
from joblib import Parallel, delayed
from omegaconf import OmegaConf
from sklearn.calibration import CalibratedClassifierCV
from threadpoolctl import threadpool_limits

from midiml.classify.copies import song_ids
from midiml.classify.lone_source import choose_prior, lone_source_classes
from midiml.classify.pipelines import (
    apply_prior,
    build_task,
    load_model,
    with_copies,
)
from midiml.classify.robustness import (
    columns_for,
    combined,
    fresh_estimator,
    held_out_source_predictions,
    held_out_source_scores,
    leaf_input,
    leaves,
    reencoded,
)
from midiml.classify.runs import (
    _plain,
    augmented_as_configured,
    out_of_source_by_genre,
    read_tables,
    selection_loops,
)
from midiml.classify.source_weighting import (
    fit_weighted,
    song_sources,
    source_genres,
    source_power,
    training_weights,
)
from midiml.classify.words_model import MusicAndWords
from midiml.config import compose_defaults
from midiml.represent.features import WORDS_COLUMN
from midiml.represent.perturb import PERTURBATIONS

CACHE = Path("data/tuning")
MANIFEST = Path("models/classifiers/manifest.json")
LOOPS = "made_up_loops"
SERVED = "served"
OWN_PRIOR = "served, own prior"  # at the lone-source prior chosen for the variant
CEILING = "any blend (ceiling)"  # blend_ceiling: leaf weights chosen on each table itself
CEILING_WEIGHTS = (0.0, 0.5, 1.0, 2.0)
SRC = Path(__file__).resolve().parents[1] / "src" / "midiml"
CODE = (SRC / "represent", SRC / "classify", SRC / "data")  # what the cached rows come from


def cached(name: str, key: Any, make: Callable[[], Any]) -> Any:
    """``make()``, kept in ``CACHE`` under ``name`` and a hash of ``key`` (its inputs)."""
    path = CACHE / f"{name}-{joblib.hash(key)[:12]}.pkl"
    if path.exists():
        return pickle.loads(path.read_bytes())
    value = make()
    CACHE.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(value))
    return value


def code_version(folders: tuple[Path, ...] = CODE) -> str:
    """A hash of the code that makes the cached rows (re-encodings, features, words, loops):
    an edit of it must not be answered from an old cache."""
    texts = [
        (folder.name, p.relative_to(folder).as_posix(), p.read_text())
        for folder in folders
        for p in sorted(folder.rglob("*.py"))
    ]
    return joblib.hash(texts)


def reencoded_test(params: Any, task: Any, files: pd.DataFrame, notes: pd.DataFrame) -> dict:
    """Feature rows of the test songs under each re-encoding, with the evaluate stage's seeds."""
    ids, seed, fp = task.ids("test"), int(params.seed), _plain(params.features)
    songs = notes[notes["file_id"].isin(ids)]
    hows = [*PERTURBATIONS, None]
    done = Parallel(n_jobs=int(params.classifier.n_jobs))(
        delayed(reencoded)(songs, files, ids, task.labels, fp, seed + i, how)
        for i, how in enumerate(hows)
    )
    return {how or "random_mix": table for how, (table, _) in zip(hows, done, strict=True)}


def with_words(pipe: Any, words_cfg: Any) -> Any:
    """The served blend with the words model and share from the (overridden) config
    (``classifier.words``: the words model is built from config, not grid-searched, so an
    override of its estimator is tried here too); a model without words is left alone."""
    if not isinstance(pipe, MusicAndWords):
        return pipe
    return MusicAndWords(pipe.music, instantiate(words_cfg.estimator), float(words_cfg.weight))


def variant(served: Any, params: Any, table: pd.DataFrame) -> Any:
    """The served model, unfitted, with the words model and weight and the columns
    (``classifier.feature_set``: ``all`` lets the file artifacts back in) of the overridden
    config, and its rows weighted by source as configured (``classifier.source_weighting``):
    what both the refit on the training songs and the held-out-source refits start from."""
    pipe = with_words(fresh_estimator(served), params.classifier.words)
    columns = columns_for(served, table, str(params.classifier.feature_set))
    power = source_power(params.classifier, "genre")
    return dataclasses.replace(served, pipeline=pipe, columns=columns, source_power=power)


def refit_leaves(params: Any, setup: Setup, model: Any) -> dict[str, dict[str, np.ndarray]]:
    """Refit ``model``'s leaves (``variant``) on the training songs and their copies (rows
    weighted by source as ``model`` says); return the probabilities (``model.classes`` order,
    no prior) of the blend (``SERVED``) and of each leaf alone on each scored table: where a
    leaf is weak shows what a change should address."""
    task, table, aug, tables = setup.task, setup.table, setup.augmented, setup.tables
    pipe = model.pipeline
    parts = leaves(pipe, list(model.columns))
    train = task.ids("train")
    source = song_sources(setup.files)
    weights = training_weights(train, task.labels, aug, source, model.source_power)

    def fit_one(estimator: Any, cols: list[str]) -> dict[str, np.ndarray]:
        X, y = with_copies(table, train, task.labels, aug, cols, leaf_input)
        estimator = fit_weighted(estimator, X, y, weights)
        out = {}
        for name, t in tables.items():
            proba = estimator.predict_proba(leaf_input(t, cols))
            out[name] = pd.DataFrame(proba, columns=estimator.classes_)[model.classes].to_numpy()
        return out

    with threadpool_limits(int(params.classifier.n_threads)):
        fits = Parallel(n_jobs=int(params.classifier.n_jobs))(
            delayed(fit_one)(e, c) for e, c in parts
        )
    probas = {SERVED: {name: combined(pipe, iter(f[name] for f in fits)) for name in tables}}
    probas |= {leaf_name(e, c): f for (e, c), f in zip(parts, fits, strict=True)}
    return probas


def truth(name: str, table: pd.DataFrame, task: Any) -> np.ndarray:
    """The genre of each row of ``table`` (a re-encoding keeps its song's; loops are lo-fi)."""
    if name == LOOPS:
        return np.full(len(table), "lofi", dtype=object)
    songs = song_ids(table["file_id"])
    return task.labels.loc[songs].to_numpy(dtype=object)


def accuracies(
    probas: dict[str, dict[str, np.ndarray]],
    tables: dict,
    task: Any,
    classes: list[str],
    prior: dict[str, float] | None,
) -> dict[str, dict[str, float]]:
    """Accuracy of each model's ``probas`` on each table, deciding with the class ``prior``."""
    scores: dict[str, dict[str, float]] = {}
    for who, by_table in probas.items():
        for name, proba in by_table.items():
            pred = np.asarray(classes, dtype=object)[apply_prior(proba, classes, prior).argmax(1)]
            correct = pred == truth(name, tables[name], task)
            scores.setdefault(who, {})[name] = round(float(correct.mean()), 3)
    return scores


def blend_ceiling(
    probas: dict[str, dict[str, np.ndarray]],
    tables: dict,
    task: Any,
    classes: list[str],
    prior: dict[str, float] | None,
    weights: tuple[float, ...] = CEILING_WEIGHTS,
) -> dict[str, float]:
    """The best accuracy on each table of any weighted mean of the leaves' probabilities
    (each leaf's weight from ``weights``), the weights chosen on that table itself: an
    optimistic bound, not a model. When it is barely above the served blend, re-weighting
    cannot reach a target; only a leaf with new information can (it raises the bound)."""
    leaf_names = [who for who in probas if who not in (SERVED, OWN_PRIOR)]
    combos = np.array(list(itertools.product(weights, repeat=len(leaf_names))), dtype=float)
    combos = combos[combos.sum(axis=1) > 0]
    ceiling = {}
    for name in probas[leaf_names[0]]:
        stack = np.stack([probas[who][name] for who in leaf_names])  # leaf x row x class
        y = truth(name, tables[name], task)
        ceiling[name] = round(float(accuracy_by_weights(stack, y, combos, classes, prior).max()), 3)
    return ceiling


def accuracy_by_weights(
    stack: np.ndarray, y: np.ndarray, weights: np.ndarray, classes: list[str], prior: Any
) -> np.ndarray:
    """Accuracy of each row of ``weights`` (weightings x leaves) on probabilities ``stack``
    (leaves x songs x classes) with true labels ``y``, deciding with the class ``prior``."""
    mixed = np.einsum("wl,lrc->wrc", weights, stack)  # weighting x song x class
    decided = apply_prior(mixed.reshape(-1, len(classes)), classes, prior).argmax(axis=1)
    pred = np.asarray(classes, dtype=object)[decided.reshape(mixed.shape[:2])]
    return (pred == y).mean(axis=1)


def held_out_scores(
    params: Any, task: Any, table: pd.DataFrame, files: pd.DataFrame, model: Any, aug: Any
) -> tuple[dict[str, float], dict[str, Any] | None]:
    """Accuracy on each held-out source of the training split, at the lone-source prior the
    pipeline would choose for this variant (``classifier.lone_source_prior``), and that
    choice (None when the config asks for no prior)."""
    source = song_sources(files)
    train = task.ids("train")
    with threadpool_limits(int(params.classifier.n_threads)):
        preds = held_out_source_predictions(
            model, table, train, task.labels, source, aug, int(params.classifier.n_jobs)
        )
    prior_cfg = params.classifier.get("lone_source_prior")
    lone = lone_source_classes(task.labels.loc[train], source) if prior_cfg else []
    choice = None
    if lone:
        factors = [float(f) for f in prior_cfg.factors]
        choice = choose_prior(preds, model.classes, lone, factors, float(prior_cfg.max_false_rate))
    model = dataclasses.replace(model, class_prior=choice["prior"] if choice else None)
    held = held_out_source_scores(model, preds)
    return {f"held_out/{k}": round(v, 3) for k, v in held.items()}, choice


def out_of_source(held: dict[str, float], files: pd.DataFrame, loops: float) -> dict[str, float]:
    """The variant's out-of-source score, what ``serve_model: auto_cross_source`` chooses by
    (``runs.out_of_source_by_genre``: each genre's mean over its held-out sources, the
    made-up loops' recall for lo-fi), and its part per genre."""
    accuracy = {name.removeprefix("held_out/"): acc for name, acc in held.items()}
    means = out_of_source_by_genre(accuracy, source_genres(files), loops)
    return {f"out_of_source/{g}": round(float(v), 3) for g, v in sorted(means.items())} | {
        "out_of_source_score": round(float(np.mean(list(means.values()))), 3)
    }


def leaf_name(estimator: Any, cols: list[str]) -> str:
    """A short name of one leaf: "words", or its (calibrated) estimator's class."""
    if cols == [WORDS_COLUMN]:
        return "words"
    step = estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator
    if isinstance(step, CalibratedClassifierCV):  # e.g. the SVM, calibrated for probabilities
        step = step.estimator
    return type(step).__name__


def with_more_songs(
    files: pd.DataFrame, splits: pd.DataFrame, table: pd.DataFrame, root: Path
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame, list[str]]:
    """This run's tables plus the usable songs of another run's (``root``: its ``interim/``
    and ``features/``, e.g. a run with larger ``max_files``) that this run lacks, all put in
    the training split: this run's test songs stay the test. Returns the three tables, the
    other run's files and the added ids."""
    for part in ("interim/files.parquet", "interim/splits.parquet", "features/features.parquet"):
        if not (root / part).exists():
            raise SystemExit(f"genre_tuning: --more-songs: no {root / part}")
    more_files, _, more_table, _ = read_tables(with_notes=False, root=root)
    usable = set(more_files.loc[more_files["status"] == "ok", "file_id"].astype(str))
    new = sorted(usable & set(more_table["file_id"].astype(str)) - set(table["file_id"]))
    if not new:
        raise SystemExit(f"genre_tuning: --more-songs: {root} has no song this run lacks")
    added = more_files[more_files["file_id"].isin(new)]
    return (
        pd.concat([files, added], ignore_index=True),
        pd.concat([splits, added[["file_id", "genre"]].assign(split="train")], ignore_index=True),
        pd.concat([table, more_table[more_table["file_id"].isin(new)]], ignore_index=True),
        more_files,
        new,
    )


@dataclasses.dataclass
class Setup:
    """What every variant is scored on: the task, tables, served model and cached rows."""

    task: Any
    table: pd.DataFrame
    files: pd.DataFrame
    served: Any
    served_name: str
    augmented: pd.DataFrame
    tables: dict[str, pd.DataFrame]


def require_run() -> None:
    """Stop in one line when the pipeline has not run here (nothing to refit or score)."""
    for needed in (MANIFEST, Path("data/features/features.parquet")):
        if not needed.exists():
            raise SystemExit(f"genre_tuning: no {needed}: run the pipeline first (make repro)")


def composed(overrides: list[str]) -> Any:
    """The defaults under Hydra ``overrides``; a mistyped key or value stops in one line."""
    try:
        return OmegaConf.create(compose_defaults(overrides))
    except HydraException as exc:
        raise SystemExit(f"genre_tuning: {str(exc).splitlines()[0]}") from None


def prepare(params: Any, more_songs: Path | None = None) -> Setup:
    """The served model and what it is scored on (test, its re-encodings, selection loops),
    with the training songs' re-encoded copies (``classifier.augment``); ``more_songs``: also
    the songs of another run's data folder that this run lacks (the test stays this run's).
    Call ``require_run`` first (before composing the config) for the one-line answer."""
    files, splits, table, _ = read_tables(with_notes=False)
    notes = functools.cache(lambda: read_tables(with_notes=True)[3])  # only if a cache misses
    task = build_task("genre", files, splits, params.classifier)
    manifest = json.loads(MANIFEST.read_text())
    served_name = manifest["tasks"]["genre"]["serve"]
    served = load_model(Path("models/classifiers/genre") / f"{served_name}.joblib")
    data_key = [joblib.hash(table), int(params.seed), _plain(params.features), code_version()]
    aug_cfg = _plain(params.classifier.augment)
    aug = cached(
        "augmented",
        [data_key, aug_cfg],
        lambda: augmented_as_configured(params, task.ids("train"), files, notes()),
    )
    tables = {"test": table.set_index("file_id").loc[task.ids("test")].reset_index()}
    tables |= cached("reencoded", data_key, lambda: reencoded_test(params, task, files, notes()))
    loops_key = [data_key, _plain(params.classifier.made_up_loops)]
    tables[LOOPS] = cached("loops", loops_key, lambda: selection_loops(params, task))
    if more_songs:  # after the test tables: they stay this run's
        files, splits, table, more_files, new = with_more_songs(files, splits, table, more_songs)
        more_notes = functools.cache(lambda: read_tables(with_notes=True, root=more_songs)[3])
        more_key = [joblib.hash(table), data_key[1:], aug_cfg]  # the table holds the new songs
        more_aug = cached(
            "augmented-more",
            more_key,
            lambda: augmented_as_configured(params, new, more_files, more_notes()),
        )
        aug = pd.concat([aug, more_aug], ignore_index=True)
        task = build_task("genre", files, splits, params.classifier)
    return Setup(task, table, files, served, served_name, aug, tables)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("overrides", nargs="*", help="Hydra overrides of conf/ (key=value)")
    ap.add_argument("--held-out", action="store_true", help="also score each held-out source")
    ap.add_argument(
        "--more-songs",
        type=Path,
        metavar="DATA",
        help="also train on the songs of another run's data folder (e.g. a clone with larger "
        "max_files after `dvc repro features split`) that this run lacks; the test stays",
    )
    args = ap.parse_args()
    start = time.perf_counter()
    require_run()
    params = composed(args.overrides)
    setup = prepare(params, args.more_songs)
    task, tables, served = setup.task, setup.tables, setup.served
    model = variant(served, params, setup.table)
    probas = refit_leaves(params, setup, model)
    scores = accuracies(probas, tables, task, served.classes, served.class_prior)
    ceiling = blend_ceiling(probas, tables, task, served.classes, served.class_prior)
    choice = None
    if args.held_out:
        held, choice = held_out_scores(
            params, task, setup.table, setup.files, model, setup.augmented
        )
        scores[SERVED] |= held
        if choice and choice["prior"] != served.class_prior:  # this variant's own prior
            own = accuracies(
                {SERVED: probas[SERVED]}, tables, task, served.classes, choice["prior"]
            )
            scores[OWN_PRIOR] = own[SERVED]
        loops = scores.get(OWN_PRIOR, scores[SERVED])[LOOPS]
        scores[SERVED] |= out_of_source(held, setup.files, loops)
    blend = scores[SERVED]
    n_train = len(task.ids("train"))
    served_name = setup.served_name
    row = {
        "overrides": args.overrides,
        "model": served_name,
        "augmented_rows": len(setup.augmented),
    }
    row["more_songs"] = str(args.more_songs) if args.more_songs else None
    row["train_songs"] = n_train
    row |= blend | {"leaves": {k: v for k, v in scores.items() if k not in (SERVED, OWN_PRIOR)}}
    row["trained_prior"] = served.class_prior
    row["chosen_prior"] = choice["prior"] if choice else None
    row |= {OWN_PRIOR: scores[OWN_PRIOR]} if OWN_PRIOR in scores else {}
    row[CEILING] = ceiling
    row["seconds"] = round(time.perf_counter() - start, 1)
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / "results.jsonl").open("a") as fh:
        fh.write(json.dumps(row) + "\n")
    more = f", {n_train} training songs" if args.more_songs else ""
    print(
        f"{served_name} with {args.overrides or 'the defaults'}{more} (leaves alone: same prior):"
    )
    print(pd.DataFrame(scores | {CEILING: ceiling}).to_string(na_rep=""))
    print(f"prior as trained: {served.class_prior}")
    if choice:
        rate = choice["false_rate"]
        print(f"prior this variant would choose: {choice['prior']} (false rate {rate})")


if __name__ == "__main__":
    main()
