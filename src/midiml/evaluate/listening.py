"""Metrics that listen: does a continuation stay in the prompt's key, register and step sizes?

Pure functions on pitch arrays (and onsets), so every generator, the real continuations
(reference row) and the CLI are scored the same way. Notes are ordered by (onset, pitch).
"""

from __future__ import annotations

import numpy as np

from midiml.represent.tonality import key_consistency


def register_distance(prompt_pitches: np.ndarray, new_pitches: np.ndarray) -> float:
    """|median new pitch - median prompt pitch| in semitones (nan if either is empty)."""
    if len(prompt_pitches) == 0 or len(new_pitches) == 0:
        return float("nan")
    return float(abs(np.median(new_pitches) - np.median(prompt_pitches)))


def mean_abs_step(pitches: np.ndarray) -> float:
    p = np.asarray(pitches, np.float64)
    return float(np.abs(np.diff(p)).mean()) if len(p) > 1 else float("nan")


def step_ratio(prompt_pitches: np.ndarray, new_pitches: np.ndarray) -> float:
    """Mean |step| of the new notes / the prompt's (1 = same melodic motion; nan if undefined)."""
    base = mean_abs_step(prompt_pitches)
    if not np.isfinite(base):
        return float("nan")
    return float(mean_abs_step(new_pitches) / max(base, 0.5))


def repetition(pitches: np.ndarray, n: int = 4) -> float:
    """Share of interval n-grams that occurred earlier in the sequence (motif reuse, 0..1)."""
    steps = np.diff(np.asarray(pitches, np.int64))
    if len(steps) < n + 1:
        return float("nan")
    grams = [tuple(steps[i : i + n]) for i in range(len(steps) - n + 1)]
    seen: set[tuple[int, ...]] = set()
    repeats = 0
    for g in grams:
        repeats += g in seen
        seen.add(g)
    return repeats / len(grams)


def listening_row(prompt_pitches: np.ndarray, new_pitches: np.ndarray) -> dict[str, float]:
    return {
        "key_consistency": key_consistency(prompt_pitches, new_pitches),
        "register_distance": register_distance(prompt_pitches, new_pitches),
        "step_ratio": step_ratio(prompt_pitches, new_pitches),
        "repetition": repetition(new_pitches),
    }


def continuation_features(prompt_pitches: np.ndarray, new_pitches: np.ndarray) -> np.ndarray:
    """A small description of one continuation for the two-sample classifier test."""
    new = np.asarray(new_pitches, np.float64)
    steps = np.abs(np.diff(new)) if len(new) > 1 else np.zeros(1)
    row = listening_row(prompt_pitches, new_pitches)
    return np.nan_to_num(
        np.array(
            [
                row["key_consistency"],
                row["register_distance"],
                row["step_ratio"],
                row["repetition"],
                float(np.mean(steps == 0)),
                float(np.mean(steps <= 2)),
                float(np.mean(steps > 7)),
                float(np.std(new)) if len(new) else 0.0,
                float(len(np.unique(new))) / max(len(new), 1),
            ]
        )
    )


def classifier_two_sample_accuracy(
    real: np.ndarray, generated: np.ndarray, seed: int = 0, folds: int = 5
) -> float:
    """Cross-validated accuracy of a classifier telling real rows from generated ones.

    0.5 = indistinguishable, 1.0 = always told apart. ``real``/``generated`` are feature rows
    (e.g. ``continuation_features``) of continuations of the same prompts.
    """
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    x = np.vstack([real, generated])
    y = np.r_[np.ones(len(real)), np.zeros(len(generated))]
    k = int(min(folds, len(real), len(generated)))
    if k < 2:
        return float("nan")
    clf = RandomForestClassifier(n_estimators=100, min_samples_leaf=2, random_state=seed)
    cv = StratifiedKFold(k, shuffle=True, random_state=seed)
    return float(cross_val_score(clf, x, y, cv=cv).mean())


def sorted_pitches(notes: dict[str, np.ndarray]) -> np.ndarray:
    """Pitches of a notes mapping ordered by (onset, pitch)."""
    order = np.lexsort((np.asarray(notes["pitch"]), np.asarray(notes["onset_s"])))
    return np.asarray(notes["pitch"], np.int64)[order]


def listening_table(
    prompts: list[dict[str, np.ndarray]],
    real: list[dict[str, np.ndarray]],
    samples: dict[str, list[list[dict[str, np.ndarray]]]],
) -> dict[str, dict[str, float]]:
    """Mean metrics per generator over prompts x seeds, ``real`` as the reference row, and the
    classifier two-sample accuracy (first seed per prompt vs the real continuation)."""
    pp = [sorted_pitches(p) for p in prompts]
    rp = [sorted_pitches(r) for r in real]
    rows = {"real": [listening_row(a, b) for a, b in zip(pp, rp, strict=True)]}
    real_feats = np.array([continuation_features(a, b) for a, b in zip(pp, rp, strict=True)])
    table: dict[str, dict[str, float]] = {}
    for name, per_prompt in samples.items():
        rows[name] = [
            {**listening_row(a, sorted_pitches(s)), "new_notes": float(len(s["pitch"]))}
            for a, seeds in zip(pp, per_prompt, strict=True)
            for s in seeds
        ]
        feats = np.array(
            [
                continuation_features(a, sorted_pitches(seeds[0]))
                for a, seeds in zip(pp, per_prompt, strict=True)
            ]
        )
        table[name] = {"c2st_accuracy": classifier_two_sample_accuracy(real_feats, feats)}
    for name, rs in rows.items():
        means = {k: float(np.nanmean([r[k] for r in rs])) for k in rs[0]} if rs else {}
        table[name] = {**means, **table.get(name, {}), "n": float(len(rs))}
    return table


def flat(table: dict[str, dict[str, float]]) -> dict[str, float]:
    """The table as flat metric names (MLflow): ``listening_<generator>_<metric>``."""
    return {f"listening_{g}_{k}": v for g, row in table.items() for k, v in row.items()}
