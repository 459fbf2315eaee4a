"""Stage ``select_classifiers``: the vote, the blend, class priors and the served model, from
the fits of stages ``train_classifier@<model>``, ``train_classifier_words`` and
``train_classifier_cnn``; nothing is refitted but the vote's frozen members' combination.

Model selection is pure functions of values (``served_model``, ``out_of_source_score``,
``held_out_entry``); ``select_task`` puts one task's models together and ``write_selection``
writes ``models/classifiers/`` (one file per model and ``manifest.json``) as serving reads it.
"""

from __future__ import annotations

import shutil
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from hydra.utils import instantiate
from sklearn.metrics import get_scorer

from midiml import tracking
from midiml.classify.fits import CONCERN, ModelFit, log_fit
from midiml.classify.held_out import (
    combine_leaves,
    held_out_source_scores,
    out_of_source_score,
)
from midiml.classify.lone_source import choose_prior, lone_source_classes
from midiml.classify.pipelines import (
    FittedModel,
    TaskData,
    feature_matrix,
    save_model,
)
from midiml.classify.served import (
    WORDS,
    Member,
    fitted_members,
    input_columns,
    members,
    with_probabilities,
)
from midiml.classify.tables import check_sources_genre
from midiml.io import read_timings

AUTO_HELD_OUT_SOURCE = "auto_held_out_source"  # serve_model: pick by held-out-source accuracy


def served_candidates(cfg: Any) -> Any:
    """``classifier.served`` built by ``hydra.utils.instantiate``: the function that puts the
    fitted models together (``served.candidates``, with the vote's members and the words'
    weight from the config). A config written without it (tests) gets the same function
    with its ``vote`` and ``words.weight``."""
    node = cfg.get("served") or {
        "_target_": "midiml.classify.served.candidates",
        "_partial_": True,
        "vote": list(cfg.get("vote") or []),
        "words_weight": float((cfg.get("words") or {}).get("weight", 0.5)),
    }
    return instantiate(node)


def vote_cv_score(
    tree: Any,
    folds: dict[str, list[np.ndarray]],
    y: np.ndarray,
    cv_folds: int,
    seed: int,
    scoring: str,
) -> float:
    """The vote's CV score from its members' out-of-fold probabilities (``folds``: member ->
    per fold, ``fits.vote_folds``), put through the vote's own tree (``served.
    with_probabilities``) and scored on each fold, as ``cross_val_score`` of the vote would."""
    from sklearn.model_selection import StratifiedKFold

    classes = list(np.unique(y))
    scorer = get_scorer(scoring)
    scores = []
    splits = StratifiedKFold(cv_folds, shuffle=True, random_state=seed).split(y, y)
    for k, (_, te) in enumerate(splits):
        fold = with_probabilities(tree, {m: f[k] for m, f in folds.items()}, classes)
        scores.append(scorer(fold, np.zeros((len(te), 1)), y[te]))
    return float(np.mean(scores))


def assemble(
    task: TaskData,
    fits: dict[str, ModelFit],
    table: pd.DataFrame,
    cfg: Any,
    seed: int,
) -> dict[str, FittedModel | str]:
    """Every candidate of ``classifier.served`` (``served.candidates``) built from the fitted
    models ``fits`` (model name -> its fit; ``WORDS``: the words model's), frozen, as the
    ``FittedModel`` serving reads, or the reason it cannot be built. Nothing here knows
    the candidates' shapes: each is a tree, scored through its members.

    On small classes (composers with ten pieces) the single models err on different songs,
    so their average is steadier than any one of them; a vote's CV score refits the members
    with their chosen hyperparameters fold by fold (their ``vote_folds``), so it is
    comparable with the members' own. A tree with a member without them (the words model)
    has none: its held-out-source scores are what it is chosen by."""
    words = fits.get(WORDS)
    trees = served_candidates(cfg)(
        {m: f.fitted.pipeline for m, f in fits.items() if m != WORDS},
        words=words.fitted if words is not None else None,
    )
    y = task.y("train")
    out: dict[str, FittedModel | str] = {}
    for name, tree in trees.items():
        parts, inner = members(tree), tree.estimator  # inside the lone-source prior
        if isinstance(inner, Member):  # a model alone: as its own stage fitted it
            fitted = fits[name].fitted
            X = feature_matrix(table, task.ids("train"), fitted.columns)
            out[name] = replace(fitted, pipeline=tree.fit(X, y))
            continue
        folds = {m: fits[m].vote_folds for m in parts}
        reasons = [f for f in folds.values() if isinstance(f, str)]
        if reasons:
            out[name] = reasons[0]
            continue
        first = next(fits[m].fitted for m in parts if m != WORDS)
        columns = input_columns(tree, list(first.columns))
        cv = float("nan")
        if all(f is not None for f in folds.values()):
            cv = vote_cv_score(tree, folds, y, first.cv_folds, seed, str(cfg.scoring))
        weights = {"weight": float(inner.weights[-1])} if inner.weights else {}
        out[name] = replace(
            first,
            model=name,
            pipeline=tree.fit(feature_matrix(table, task.ids("train"), columns), y),
            columns=columns,
            best_params={"members": [n for n, _ in inner.estimators]} | weights,
            cv_macro_f1=cv,
        )
    return out


def held_out_entry(
    fitted: FittedModel,
    fits: dict[str, ModelFit],
    task: TaskData,
    source: pd.Series,
    prior_cfg: Any,
) -> dict[str, Any]:
    """Held-out-source accuracies of ``fitted`` (its members' refits, ``fits``, combined) at the
    lone-source class prior chosen from the same predictions (``classifier.lone_source_prior``;
    ``class_prior``: the choice, for the caller to set); empty when no class has two
    sources. A value: ``fitted`` is not changed."""
    names = list(members(fitted.pipeline))
    predictions = combine_leaves(
        fitted, {n: fits[n].held_out for n in names}, fits[names[0]].truths
    )
    if not predictions:
        return {}
    out: dict[str, Any] = {}
    lone = lone_source_classes(task.labels.loc[task.ids("train")], source) if prior_cfg else []
    if lone:
        choice = choose_prior(
            predictions,
            fitted.classes,
            lone,
            [float(f) for f in prior_cfg.factors],
            float(prior_cfg.max_false_rate),
        )
        out["class_prior"] = choice
    prior = out.get("class_prior", {}).get("prior") or {}
    scores = held_out_source_scores(fitted, predictions, prior)
    return out | {
        "held_out_source": scores,
        "held_out_source_mean": float(np.mean(list(scores.values()))),
    }


def serve_rule(entry: dict[str, Any], wanted: str) -> str:
    """The rule that actually picked ``entry["serve"]``: ``auto_held_out_source`` falls back to
    ``auto`` when the served model has no held-out-source score (no class has two sources)."""
    served = entry.get("models", {}).get(entry.get("serve"), {})
    if wanted == AUTO_HELD_OUT_SOURCE and "held_out_source_mean" not in served:
        return "auto"
    return wanted


def loops_genre(params: Any) -> str:
    """The genre of the synthetic check sources the selection scores (``data.check_sources``)."""
    return str(check_sources_genre(params))


def served_model(models: dict[str, Any], wanted: str, order: list[str]) -> str | None:
    """The feature model the CLI uses: the configured one, the best by CV on train ("auto"),
    or the best on music from no training source ("auto_held_out_source": ``out_of_source_score``
    where made-up loops exist, else mean held-out-source accuracy on train; CV breaking ties;
    plain "auto" when no model has that score, e.g. every class has one source)."""
    feats = {m: v for m, v in models.items() if v.get("kind") == "features"}
    if not feats:
        return None
    if wanted == AUTO_HELD_OUT_SOURCE:
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


def _finite(value: float) -> float | None:
    """``value``, or None for NaN (a model without a CV score; JSON has no NaN)."""
    return None if np.isnan(value) else float(value)


def _prior_cfg(cfg: Any, task: str) -> Any:
    """``classifier.lone_source_prior`` when it applies to ``task``, else None."""
    prior = cfg.get("lone_source_prior")
    return prior if prior and task in list(prior.get("tasks", [])) else None


def select_task(
    params: Any,
    task: TaskData,
    fits: dict[str, ModelFit | dict],
    table: pd.DataFrame,
    files: pd.DataFrame,
    source: pd.Series,
    loops: pd.DataFrame | None,
    log=print,
) -> tuple[dict[str, Any], dict[str, FittedModel]]:
    """One task's models (``fits``: model name -> its fit, or ``{"skipped": reason}``), the
    vote and the blend; their held-out scores, class priors and out-of-source scores; which
    model is served. Returns (the manifest entry without files, the fitted models)."""
    cfg, seed = params.classifier, int(params.seed)
    wanted = str(cfg.get("serve_model", "auto"))
    infos: dict[str, Any] = {}
    models: dict[str, FittedModel] = {}
    for m in cfg.models:
        fit = fits.get(m)
        if isinstance(fit, dict):
            infos[m] = dict(fit)
        elif fit is not None:
            run = read_timings(f"classifier_fits_{m}").get(task.name, {})
            infos[m] = {"run_id": run.get("run_id")}  # the fit's MLflow run, to nest under
    done = {m: f for m, f in fits.items() if isinstance(f, ModelFit)}
    for m, built in assemble(task, done, table, cfg, seed).items():
        if isinstance(built, str):
            infos[m] = {"skipped": built}
        else:
            models[m] = built
    order = [*cfg.models, *(m for m in [*infos, *models] if m not in cfg.models)]
    order = list(dict.fromkeys(order))
    for m in order:
        if m not in models:
            continue
        fitted = models[m]
        held = held_out_entry(fitted, fits, task, source, _prior_cfg(cfg, task.name))
        if "class_prior" in held:  # the prior is a parameter of the served tree's root
            fitted.pipeline.set_params(prior=held["class_prior"]["prior"])
        if held and loops is not None:
            held |= out_of_source_score(fitted, held, files, loops, loops_genre(params))
        run_id = infos.get(m, {}).get("run_id")
        combined_model = m not in cfg.models  # single models have their own runs
        opened = (
            tracking.run(params, CONCERN, f"{task.name}/{m}") if combined_model else nullcontext()
        )
        with opened as run:
            if run is not None:
                log_fit(fitted)
                run_id = run.info.run_id
        _log_held_out(params, run_id, held, fitted)  # nested under it, once it is closed
        infos[m] = {
            "kind": "features",
            "best_params": fitted.best_params,
            "cv_macro_f1": _finite(fitted.cv_macro_f1),
            "cv_folds": fitted.cv_folds,
            "run_id": run_id,
        } | held
        held_mean, oos = held.get("held_out_source_mean"), held.get("out_of_source_score")
        log(
            f"{task.name}/{m}: CV macro-F1 {_cv_text(fitted.cv_macro_f1)} "
            + (f"held-out-source accuracy {held_mean:.3f} " if held_mean is not None else "")
            + (f"out-of-source score {oos:.3f} " if oos is not None else "")
            + f"{fitted.best_params}"
        )
    infos = {m: infos[m] for m in order if m in infos}
    return {"serve_order": order, "wanted": wanted, "models": infos}, models


def _cv_text(value: float) -> str:
    """A CV score for the log: three decimals, or "-" for a model without one."""
    return "-" if np.isnan(value) else f"{value:.3f}"


def _log_held_out(
    params: Any, run_id: str | None, held: dict[str, Any], fitted: FittedModel
) -> None:
    """Held-out-source scores and the class prior, as a run nested under the model's run."""
    if not held or not run_id:
        return
    with tracking.evaluation_run(params, CONCERN, run_id, "held_out_source") as run:
        if run is None:
            return
        rates = held.get("class_prior", {}).get("false_rate", {})
        tracking.log_metrics(
            {"held_out_source_mean": held["held_out_source_mean"]}
            | {f"class_prior_{c}": f for c, f in (fitted.class_prior or {}).items()}
            | {f"held_out_false_{c}_rate": r for c, r in rates.items()}
            | {"out_of_source_score": held.get("out_of_source_score")}
        )


def write_selection(
    entries: dict[str, Any],
    models: dict[str, dict[str, FittedModel]],
    cnn: dict[str, dict[str, Any]],
    cnn_dir: Path,
    feature_params: dict[str, Any],
    out_dir: Path,
) -> dict[str, Any]:
    """``models/classifiers/``: ``<task>/<model>.pkl`` for every model (class priors set; a
    combination refers to its members' own files instead of holding copies of them), the CNN
    checkpoints (and their labels of the test and validation songs) copied beside
    them, and the manifest (returned) that serving reads."""
    manifest: dict[str, Any] = {"features": feature_params, "tasks": {}}
    for name, entry in entries.items():
        if "skipped" in entry:
            manifest["tasks"][name] = entry
            continue
        (out_dir / name).mkdir(parents=True, exist_ok=True)
        order = entry.pop("serve_order")
        held: dict[str, str] = {}  # member -> the file of the model that is it alone
        for m, fitted in models[name].items():
            save_model(fitted, out_dir / name / f"{m}.pkl", elsewhere=held)
            entry["models"][m]["file"] = f"{name}/{m}.pkl"
            if list(fitted_members(fitted.pipeline)) == [m]:  # the vote refers to this file
                held[m] = f"{m}.pkl"
        info = cnn.get(name)
        if info is not None:
            if info.get("file"):
                shutil.copyfile(cnn_dir / info["file"], out_dir / name / "cnn.ckpt")
                info = info | {"file": f"{name}/cnn.ckpt"}
            if info.get("labels"):  # its labels of the test and validation songs
                target = f"{name}/{Path(info['labels']).name}"
                shutil.copyfile(cnn_dir / info["labels"], out_dir / target)
                info = info | {"labels": target}
            entry["models"]["cnn"] = info
        entry["serve"] = served_model(entry["models"], entry.pop("wanted"), order)
        manifest["tasks"][name] = entry
    return manifest
