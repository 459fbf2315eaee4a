"""Would the piano-roll CNN transfer to other people's music better than the served model?

Issue 10 lets a sequence model serve genre instead of the feature blend if it transfers
better, decided by the cross-source numbers. The pipeline cannot afford them for the CNN
(one fit per held-out source, minutes each on a CPU), so this tool computes them once, after
the pipeline has run: for each source that can be left out (its genre has two or more
sources), the configured CNN (``classifier.cnn``, with ``copies`` re-encodings of each
training song, ``runs.cnn_copies``) is fitted on every other source's training songs, early-
stopped on the other sources' validation songs, and scored on the left-out source's training
songs: the same folds as the served model's held-out-source accuracy
(``robustness.held_out_folds``), printed beside it from ``reports/metrics/classifiers.json``.

    python benchmarks/cnn_held_out_source.py                # every source (~15 min on 2 cores)
    python benchmarks/cnn_held_out_source.py --sources videogame classical_whowrotethatsong
    python benchmarks/cnn_held_out_source.py classifier.cnn.copies=1  # Hydra overrides

Each fold's result is appended to ``data/tuning/cnn_held_out_source.jsonl``. Nothing is logged
to MLflow.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd
from hydra.errors import HydraException
from omegaconf import OmegaConf

from midiml.classify.cnn import PianoRollCNNClassifier
from midiml.classify.cnn_fit import cnn_copies, rolls_for, training_rolls
from midiml.classify.held_out import held_out_folds
from midiml.classify.pipelines import TaskData, build_task
from midiml.classify.source_weighting import song_sources, source_genres
from midiml.classify.tables import plain as _plain
from midiml.classify.tables import read_tables
from midiml.config import compose_defaults

METRICS = Path("reports/metrics/classifiers.json")
RESULTS = Path("data/tuning") / "cnn_held_out_source.jsonl"


def require_run() -> None:
    """Stop in one line when the pipeline has not run here (nothing to compare with)."""
    for needed in (METRICS, Path("data/features/features.parquet")):
        if not needed.exists():
            raise SystemExit(
                f"cnn_held_out_source: no {needed}: run the pipeline first (make repro)"
            )


def composed(overrides: list[str]) -> Any:
    """The defaults under Hydra ``overrides``; a mistyped key or value stops in one line."""
    try:
        return OmegaConf.create(compose_defaults(overrides))
    except HydraException as exc:
        raise SystemExit(f"cnn_held_out_source: {str(exc).splitlines()[0]}") from None


def served_held_out(path: Path = METRICS) -> tuple[str | None, dict[str, float]]:
    """The served genre model's name and its held-out-source accuracy per source."""
    if not path.exists():
        return None, {}
    genre = json.loads(path.read_text())["tasks"].get("genre", {})
    served = genre.get("serve")
    return served, dict(genre.get("models", {}).get(served, {}).get("held_out_source_train", {}))


def fold_accuracy(
    params: Any,
    task: TaskData,
    notes: pd.DataFrame,
    train: list[str],
    test: list[str],
    val: list[str],
    copies: tuple[pd.DataFrame, pd.DataFrame] | None,
) -> float:
    """Accuracy on ``test`` of the configured CNN fitted on ``train`` (and their copies
    among ``copies``: notes and file rows), early-stopped on ``val``."""
    roll = params.classifier.cnn.roll
    rolls, y = training_rolls(notes, roll, task.labels, train, copies)
    clf = PianoRollCNNClassifier(params.classifier.cnn, params, "genre/cnn")
    with tempfile.TemporaryDirectory() as ckpt:
        clf.fit(rolls, y, rolls_for(notes, roll, val), task.labels.loc[val].to_numpy(), ckpt)
    pred = clf.predict(rolls_for(notes, roll, test))
    return float((pred == task.labels.loc[test].to_numpy(dtype=object)).mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("overrides", nargs="*", help="Hydra overrides of conf/ (key=value)")
    ap.add_argument("--sources", nargs="*", help="only these held-out sources (default: all)")
    args = ap.parse_args()
    require_run()
    params = composed(args.overrides)
    params.tracking.enabled = False
    files, splits, _, notes = read_tables(with_notes=True)
    task = build_task("genre", files, splits, params.classifier)
    source = song_sources(files)
    folds = held_out_folds(task.ids("train"), task.labels, source)
    unknown = sorted(set(args.sources or []) - set(folds))
    if unknown:
        raise SystemExit(
            f"cnn_held_out_source: no held-out fold for {unknown}; folds: {list(folds)}"
        )
    copies = cnn_copies(params, task.ids("train"), files, notes)
    served, served_acc = served_held_out()
    genre_of = source_genres(files)
    rows = []
    for held, (train, test) in folds.items():
        if args.sources and held not in args.sources:
            continue
        val = [i for i in task.ids("val") if str(source[i]) != held]
        start = time.perf_counter()
        acc = fold_accuracy(params, task, notes, train, test, val, copies)
        row = {
            "overrides": args.overrides,
            "cnn": _plain(params.classifier.cnn.roll) | {"copies": params.classifier.cnn.copies},
            "held_out": held,
            "genre": str(genre_of[held]),
            "songs": len(test),
            "cnn_accuracy": round(acc, 3),
            "served_accuracy": served_acc.get(held),
            "seconds": round(time.perf_counter() - start, 1),
        }
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        with RESULTS.open("a") as fh:
            fh.write(json.dumps(row) + "\n")
        print(json.dumps(row), flush=True)
        rows.append(row)
    table = pd.DataFrame(rows).drop(columns=["overrides", "cnn"])
    print(f"served model: {served}")
    print(table.to_string(index=False))
    print(table.groupby("genre")[["cnn_accuracy", "served_accuracy"]].mean().round(3))


if __name__ == "__main__":
    main()
