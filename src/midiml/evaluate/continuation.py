"""A continuation against what the music really did next: five measures, a score, novelty.

Pure functions on note columns (mappings of column -> array: ``pitch``, ``onset_s``,
``duration_s``, ``onset_beats``; drum notes must already be removed: a drum's "pitch" is an
instrument, not a pitch). ``new`` is what a continuation plays after the cut, ``real`` what the
song played there; every measure is 0..1, 1 = like the real continuation:

- **harmony**: cosine similarity of the two duration-weighted pitch-class histograms (12 bins,
  each note weighs its length in seconds): the same chords/scale in the same proportions.
- **rhythm**: overlap (sum of the bin-wise minimum) of the two normalised histograms of each
  onset's position within its beat, ``RHYTHM_BINS`` = 12 bins per beat (sixteenths and
  triplets land in their own bins; an onset a little early counts for the nearest position).
- **density**: min/max of the two note counts.
- **texture**: min/max of the mean number of notes struck together (onsets closer than
  ``CHORD_SECONDS`` form one group): a single line against chords scores ~1/3.
- **register**: exp(-|median pitch difference| / 6): 6 semitones apart scores 0.37.
- **score**: the mean of the five.
- **novelty** (not in the score): share of the continuation's 4-note interval patterns (the 3
  successive intervals of 4 successive notes, notes ordered by onset then pitch) that the
  prompt does not contain. A loop of the prompt scores ~0, random notes ~1, real
  continuations lie between (much of a song's material comes back, some is new).

An empty continuation scores 0 on every measure and is counted (``empty`` = 1), never dropped.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from midiml.evaluate.listening import classifier_two_sample_accuracy

NoteColumns = Mapping[str, np.ndarray]
MEASURES = ("harmony", "rhythm", "density", "texture", "register")
RHYTHM_BINS = 12
CHORD_SECONDS = 0.035  # onsets this close are struck together (a performed chord spreads a bit)
REGISTER_SEMITONES = 6.0
PATTERN_NOTES = 4


def _col(notes: NoteColumns, name: str) -> np.ndarray:
    return np.asarray(notes[name], np.float64).reshape(-1)


def ordered_pitches(notes: NoteColumns) -> np.ndarray:
    """Pitches ordered by (onset, pitch): a polyphonic part read as one line, chords upwards."""
    pitch, onset = _col(notes, "pitch"), _col(notes, "onset_s")
    return pitch[np.lexsort((pitch, onset))].astype(np.int64)


def pitch_class_histogram(notes: NoteColumns) -> np.ndarray:
    """(12,) summed durations (seconds, at least 1 ms a note) per pitch class."""
    pc = _col(notes, "pitch").astype(np.int64) % 12
    return np.bincount(pc, np.maximum(_col(notes, "duration_s"), 1e-3), minlength=12)


def beat_position_histogram(notes: NoteColumns) -> np.ndarray:
    """(RHYTHM_BINS,) share of onsets at each position within the beat."""
    pos = np.mod(_col(notes, "onset_beats") + 0.5 / RHYTHM_BINS, 1.0)
    idx = np.minimum((pos * RHYTHM_BINS).astype(np.int64), RHYTHM_BINS - 1)
    hist = np.bincount(idx, minlength=RHYTHM_BINS).astype(np.float64)
    return hist / max(hist.sum(), 1.0)


def notes_per_onset(notes: NoteColumns) -> float:
    """Mean number of notes per onset group (onsets within CHORD_SECONDS of the previous)."""
    onset = np.sort(_col(notes, "onset_s"))
    if len(onset) == 0:
        return 0.0
    groups = 1 + int((np.diff(onset) > CHORD_SECONDS).sum())
    return len(onset) / groups


def ratio(a: float, b: float) -> float:
    """min/max of two non-negative amounts (1 when both are 0)."""
    hi = max(a, b)
    return 1.0 if hi <= 0 else float(min(a, b) / hi)


def harmony(new: NoteColumns, real: NoteColumns) -> float:
    a, b = pitch_class_histogram(new), pitch_class_histogram(real)
    norm = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(a @ b / norm) if norm > 0 else 0.0


def rhythm(new: NoteColumns, real: NoteColumns) -> float:
    if len(_col(new, "pitch")) == 0 or len(_col(real, "pitch")) == 0:
        return 0.0
    return float(np.minimum(beat_position_histogram(new), beat_position_histogram(real)).sum())


def density(new: NoteColumns, real: NoteColumns) -> float:
    return ratio(len(_col(new, "pitch")), len(_col(real, "pitch")))


def texture(new: NoteColumns, real: NoteColumns) -> float:
    return ratio(notes_per_onset(new), notes_per_onset(real))


def register(new: NoteColumns, real: NoteColumns) -> float:
    a, b = _col(new, "pitch"), _col(real, "pitch")
    if len(a) == 0 or len(b) == 0:
        return 0.0
    return float(np.exp(-abs(np.median(a) - np.median(b)) / REGISTER_SEMITONES))


def interval_patterns(pitches: np.ndarray, notes: int = PATTERN_NOTES) -> list[tuple[int, ...]]:
    """Every run of ``notes - 1`` successive intervals of an ordered pitch sequence."""
    steps = np.diff(np.asarray(pitches, np.int64))
    n = notes - 1
    return [tuple(steps[i : i + n].tolist()) for i in range(len(steps) - n + 1)]


def novelty(prompt: NoteColumns, new: NoteColumns) -> float:
    """Share of ``new``'s interval patterns absent from ``prompt`` (nan under 4 new notes)."""
    pats = interval_patterns(ordered_pitches(new))
    if not pats:
        return float("nan")
    known = set(interval_patterns(ordered_pitches(prompt)))
    return float(np.mean([p not in known for p in pats]))


def continuation_row(prompt: NoteColumns, new: NoteColumns, real: NoteColumns) -> dict[str, float]:
    """The five measures, their mean (``score``), ``novelty``, ``empty`` and ``notes``."""
    n_new = len(_col(new, "pitch"))
    row = {
        "harmony": harmony(new, real),
        "rhythm": rhythm(new, real),
        "density": density(new, real),
        "texture": texture(new, real),
        "register": register(new, real),
    }
    row["score"] = float(np.mean([row[m] for m in MEASURES]))
    row["novelty"] = novelty(prompt, new)
    row["empty"] = float(n_new == 0)
    row["notes"] = float(n_new)
    return row


def description(prompt: NoteColumns, notes: NoteColumns, seconds: float) -> np.ndarray:
    """A continuation's features for the real-vs-generated two-sample test.

    Everything is measured on the continuation alone or against its prompt (never against the
    real continuation, which would give the real rows away): notes per second, notes per
    onset, pitch spread, median pitch relative to the prompt's, mean |step|, share of steps of
    at most 2 semitones, share of repeated pitches, log mean duration, harmony, rhythm and
    register against the prompt, novelty.
    """
    pitch = ordered_pitches(notes).astype(np.float64)
    if len(pitch) == 0:
        return np.zeros(12)
    steps = np.abs(np.diff(pitch)) if len(pitch) > 1 else np.zeros(1)
    nov = novelty(prompt, notes)
    return np.array(
        [
            len(pitch) / max(seconds, 1e-6),
            notes_per_onset(notes),
            float(np.std(pitch)),
            float(np.median(pitch) - np.median(_col(prompt, "pitch"))),
            float(steps.mean()),
            float(np.mean(steps <= 2)),
            float(np.mean(steps == 0)),
            float(np.log(max(float(np.mean(_col(notes, "duration_s"))), 1e-3))),
            harmony(notes, prompt),
            rhythm(notes, prompt),
            register(notes, prompt),
            0.0 if np.isnan(nov) else nov,
        ]
    )


def _finite_mean(values: list[float]) -> float:
    vals = np.asarray(values, np.float64)
    ok = vals[np.isfinite(vals)]
    return float(ok.mean()) if len(ok) else float("nan")


def summarise(rows: list[dict[str, float]]) -> dict[str, float]:
    """Means of a list of rows (novelty over the rows where it is defined), plus ``n``."""
    out: dict[str, float] = {}
    for key in (*MEASURES, "score", "novelty", "empty", "notes"):
        out[key] = _finite_mean([r[key] for r in rows])
    out["n"] = float(len(rows))
    return out


def by_genre(rows: list[dict[str, float]], genres: list[str]) -> dict[str, dict[str, float]]:
    """``summarise`` per genre and ``all`` = the mean of the genre means (each genre counts
    the same, whatever its number of songs)."""
    per = {
        g: summarise([r for r, rg in zip(rows, genres, strict=True) if rg == g])
        for g in sorted(set(genres))
    }
    overall = {
        k: _finite_mean([p[k] for p in per.values()])
        for k in (*MEASURES, "score", "novelty", "empty", "notes")
    }
    overall["n"] = float(len(rows))
    return {"all": overall, **per}


def two_sample_accuracy(
    prompts: list[NoteColumns],
    real: list[NoteColumns],
    generated: list[NoteColumns],
    seconds: list[float],
    seed: int = 0,
) -> float:
    """C2ST: cross-validated accuracy of a classifier telling generated continuations from the
    real ones of the same prompts on their ``description`` (0.5 = indistinguishable)."""
    desc = [
        np.array([description(p, c, s) for p, c, s in zip(prompts, side, seconds, strict=True)])
        for side in (real, generated)
    ]
    return classifier_two_sample_accuracy(desc[0], desc[1], seed=seed)


def continuation_table(
    prompts: list[NoteColumns],
    real: list[NoteColumns],
    genres: list[str],
    seconds: list[float],
    samples: Mapping[str, list[list[NoteColumns]]],
    seed: int = 0,
) -> dict[str, dict[str, object]]:
    """Per row (a generator setting or a reference): ``by_genre`` of its continuation rows over
    cuts x seeds, and ``c2st_accuracy`` on its first-seed continuations; ``real`` scores the
    real continuations against themselves (1 on every measure) and gives their novelty."""
    table: dict[str, dict[str, object]] = {}
    real_rows = [continuation_row(p, r, r) for p, r in zip(prompts, real, strict=True)]
    table["real"] = by_genre(real_rows, genres)
    for name, per_cut in samples.items():
        rows, row_genres = [], []
        for p, r, g, seeds in zip(prompts, real, genres, per_cut, strict=True):
            for new in seeds:
                rows.append(continuation_row(p, new, r))
                row_genres.append(g)
        table[name] = by_genre(rows, row_genres)
        first = [seeds[0] for seeds in per_cut]
        table[name]["c2st_accuracy"] = two_sample_accuracy(prompts, real, first, seconds, seed)
    return table


def choose_default(
    table: Mapping[str, Mapping[str, Any]], rows: Mapping[str, Mapping[str, Any]]
) -> dict[str, Any] | None:
    """The learned generator setting with the best overall score among those that make the
    music themselves: sampled **without** the guards (the default must hold up without them,
    so it is chosen by that score) and writing its **own rhythm** (a row marked
    ``own_rhythm: False`` replays the prompt's onsets, durations and chord sizes, so three of
    the five measures score the prompt, not the model). References and the random floor never
    qualify, nor a row without a score; ties: the first row name in sorted order; None when
    there is none."""
    learned = sorted(
        n
        for n, r in rows.items()
        if r.get("kind") == "generator"
        and not r.get("guards")
        and r.get("own_rhythm", True)
        and n in table
        and np.isfinite(table[n]["all"]["score"])
    )
    if not learned:
        return None
    best = max(learned, key=lambda n: (table[n]["all"]["score"], -learned.index(n)))
    return {
        "row": best,
        "model": rows[best]["model"],
        "guards": rows[best]["guards"],
        "score": table[best]["all"]["score"],
    }


def flat(section: Mapping[str, Any]) -> dict[str, float]:
    """The section's table as flat metric names (MLflow):
    ``continuation_<row>_<genre|all>_<measure>`` and ``continuation_<row>_c2st_accuracy``."""
    out: dict[str, float] = {}
    for row, cols in section["table"].items():
        key = row.replace("/", "_")
        for genre, vals in cols.items():
            if isinstance(vals, Mapping):
                out.update({f"continuation_{key}_{genre}_{m}": v for m, v in vals.items()})
            else:
                out[f"continuation_{key}_{genre}"] = vals
    return out
