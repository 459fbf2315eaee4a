"""Would weighting the served genre model's leaves transfer better than its equal weights?

The served blend averages its leaves (the vote's feature models, then the words model) with
fixed weights. This refits each leaf as the tuning tool does (``genre_tuning.py``: training
songs plus re-encoded copies, and once per held-out source), then searches a grid of leaf
weights for the best out-of-source score (the serving rule: the mean over genres of the
held-out sources' accuracy, the selection loops for lo-fi), at the trained lone-source prior.

The honest check is leave one source out: for each held-out source, the weights are chosen
on the rule without that source and scored on it, next to the equal weights. Weights that
only fit the sources they were chosen on lose there.

    python benchmarks/vote_weights.py                     # the served model as trained
    python benchmarks/vote_weights.py classifier.augment.copies.lofi=8

Scratch numbers: nothing is written but the printout (and the tuning tool's caches).
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent))
import genre_tuning as tuning  # noqa: E402  (a script beside this one, not a package)
from genre_tuning import accuracy_by_weights  # noqa: E402

from midiml.classify.robustness import (  # noqa: E402
    combined,
    held_out_source_predictions,
    leaves,
    refit_key,
)
from midiml.classify.runs import out_of_source_by_genre  # noqa: E402
from midiml.classify.source_weighting import song_sources  # noqa: E402

MUSIC_WEIGHTS = (0, 1, 2, 3)  # per feature model
WORDS_WEIGHTS = (0, 2, 4, 6, 8, 10)  # the words model (the served blend: 5 = half)


def weight_grid(n_music: int) -> np.ndarray:
    """Every weighting of ``n_music`` feature models and the words model (rows sum to 1)."""
    combos = itertools.product(*([MUSIC_WEIGHTS] * n_music), WORDS_WEIGHTS)
    grid = np.array([c for c in combos if sum(c) > 0], dtype=float)
    return grid / grid.sum(axis=1, keepdims=True)


def rule(
    held: dict[str, np.ndarray],
    genre_of: dict[str, str],
    loops: np.ndarray,
    without: str | None = None,
) -> np.ndarray:
    """The out-of-source score of each weighting, as the pipeline's
    (``runs.out_of_source_by_genre``; ``held``: source -> accuracy per weighting, ``loops``:
    the loops' recall per weighting); ``without`` leaves that source out."""
    kept = {source: acc for source, acc in held.items() if source != without}
    return np.mean(list(out_of_source_by_genre(kept, genre_of, loops).values()), axis=0)


def leaf_probabilities(
    params: Any, setup: Any, model: Any
) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Each leaf's probabilities on every scored table, and per held-out source (leaves x
    songs x classes, true labels), all in ``model.classes`` order."""
    probas = tuning.refit_leaves(params, setup, model)
    source = song_sources(setup.files)
    refits: dict[tuple, Any] = {}
    with threadpool_limits(int(params.classifier.n_threads)):
        preds = held_out_source_predictions(
            model,
            setup.table,
            setup.task.ids("train"),
            setup.task.labels,
            source,
            setup.augmented,
            int(params.classifier.n_jobs),
            refits=refits,
        )
    classes = list(model.classes)
    held = {}
    for name, (_, y) in preds.items():
        per_leaf = []
        for estimator, cols in leaves(model.pipeline, list(model.columns)):
            known, proba = refits[refit_key(name, cols, estimator, model.source_power)]
            per_leaf.append(pd.DataFrame(proba, columns=known)[classes].to_numpy())
        held[name] = (np.stack(per_leaf), y)
    return probas, held


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("overrides", nargs="*", help="Hydra overrides of conf/ (key=value)")
    args = ap.parse_args()
    tuning.require_run()
    params = tuning.composed(args.overrides)
    setup = tuning.prepare(params)
    model = tuning.variant(setup.served, params, setup.table)
    probas, held = leaf_probabilities(params, setup, model)
    classes, prior = list(model.classes), setup.served.class_prior
    names = [who for who in probas if who != tuning.SERVED]
    grid = weight_grid(len(names) - 1)

    def stacked(table: str) -> tuple[np.ndarray, np.ndarray]:
        y = tuning.truth(table, setup.tables[table], setup.task)
        return np.stack([probas[who][table] for who in names]), y

    genre_of = {source: str(y[0]) for source, (_, y) in held.items()}
    held_acc = {s: accuracy_by_weights(st, y, grid, classes, prior) for s, (st, y) in held.items()}
    loops = accuracy_by_weights(*stacked(tuning.LOOPS), grid, classes, prior)
    best = int(np.argmax(rule(held_acc, genre_of, loops)))
    print(f"leaves: {', '.join(names)}; {len(grid)} weightings")
    print(f"chosen on every held-out source and the selection loops: {np.round(grid[best], 3)}")
    print(f"{'table':34s} {'equal':>6s} {'chosen':>6s}")
    one = np.ones((1, 1))  # a single "leaf": the served blend as it is
    for table in setup.tables:
        stack, y = stacked(table)
        equal = accuracy_by_weights(probas[tuning.SERVED][table][None], y, one, classes, prior)[0]
        chosen = accuracy_by_weights(stack, y, grid[best : best + 1], classes, prior)[0]
        print(f"{table:34s} {equal:6.3f} {chosen:6.3f}")
    equal_held = {
        source: accuracy_by_weights(
            combined(model.pipeline, iter(stack))[None], y, one, classes, prior
        )
        for source, (stack, y) in held.items()
    }
    equal_loops = accuracy_by_weights(
        probas[tuning.SERVED][tuning.LOOPS][None], stacked(tuning.LOOPS)[1], one, classes, prior
    )
    print(
        f"{'out-of-source score':34s} {rule(equal_held, genre_of, equal_loops)[0]:6.3f} "
        f"{rule(held_acc, genre_of, loops)[best]:6.3f}"
    )
    print("leave one source out (weights chosen on the other sources and the loops):")
    print(f"{'held-out source':34s} {'equal':>6s} {'chosen':>6s}")
    for source in held:
        pick = int(np.argmax(rule(held_acc, genre_of, loops, without=source)))
        print(f"{source:34s} {equal_held[source][0]:6.3f} {held_acc[source][pick]:6.3f}")


if __name__ == "__main__":
    main()
