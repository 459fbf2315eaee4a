"""A song as a sentence of musical words, for bag-of-n-grams models.

The summary features (``musical.py``, ``progression.py``) average a song into numbers; what
tells a game theme from a sonatina is often the idioms, in order: the melody's step-and-
rhythm figures, the bass line's moves, how many notes strike together, how long they are
held, the chord degrees of the progression. Here each of these becomes a line of words, so
a text model (tf-idf n-grams, ``classify/words_model.py``) can count which figures a genre
uses. Every word is measured from the sounding notes in seconds and relative to the key, as
the musical features are: a transposed or re-tracked copy of a song reads the same, and so
does a re-tempoed one but for the harmony line, where half-second windows straddle chord
changes.

Lines, in this order (joined by ``LINE_BREAK``; n-grams never span two lines):

- melody: ``m<step>r<rhythm>`` per onset cluster: the top note's step in semitones from
  the previous cluster's (clipped to +-12) and log2 of this inter-onset interval over the
  previous one, rounded and clipped to +-2 (slower, same, faster);
- bass: ``b<step>``, the lowest struck note's step (clipped to +-12);
- texture: ``s<n>``, notes struck together (1-4, 4 meaning four or more);
- voicing: ``v<i>-<j>-...``, for each cluster of two or more pitches, the intervals (mod
  12) of its other pitches above its lowest: a root-position triad ``v4-7``, its first
  inversion ``v3-8``, an open fifth with the octave ``v0-7``;
- articulation: ``a<k>`` for each cluster but the last, its longest note over the time to
  the next cluster, as 2 log2 of that ratio rounded and clipped to -4..2: ``a-4`` a
  staccato quarter of the gap (or less), ``a0`` held up to the next onset, ``a2`` ringing
  on for twice the gap (or more: held chords, pedal). Scores, sequenced tracks,
  performances and chord loops hold their notes differently, and a ratio does not change
  with the tempo;
- harmony: ``h<degree><quality>`` for each chord of ``progression.py`` (half-second
  windows, repeats merged): its root in semitones above the key's tonic and its quality.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from midiml.represent import progression

LINE_BREAK = " | "
N_LINES = 6  # melody, bass, texture, voicing, articulation, harmony
CLUSTER_S = 0.06  # as musical.CLUSTER_S: onsets closer than this strike together
MAX_STEP = 12
MAX_TEXTURE = 4
ARTICULATION_RANGE = (-4, 2)  # 2 log2(held / gap): a quarter of the gap .. twice it
QUALITY_NAMES = list(progression.QUALITIES)
# voicing word of each 12-bit set of intervals above a chord's lowest note ("" for none)
VOICINGS = [
    "v" + "-".join(str(i) for i in range(12) if b >> i & 1) if b else "" for b in range(4096)
]


def _clusters(
    onset_s: np.ndarray, pitch: np.ndarray, duration_s: np.ndarray
) -> tuple[np.ndarray, ...]:
    """Start time, top pitch, lowest pitch, size, voicing word and longest duration of each
    onset cluster (input sorted by onset; the word is empty for a cluster of one pitch)."""
    cluster = np.r_[0, np.cumsum(np.diff(onset_s) > CLUSTER_S)]
    # clusters are runs of consecutive notes: each one's min / max / size over its run
    # (numpy's reduceat: what a groupby on the cluster number gave, without its overhead)
    first = np.flatnonzero(np.r_[True, cluster[1:] != cluster[:-1]])
    low = np.minimum.reduceat(pitch, first)
    # each distinct pitch but the lowest sets the bit of its interval above the lowest
    pairs = np.unique(np.stack([cluster, pitch], axis=1), axis=0)
    upper = np.r_[False, pairs[1:, 0] == pairs[:-1, 0]]
    bits = np.zeros(len(low), dtype=np.int64)
    np.bitwise_or.at(bits, pairs[upper, 0], 1 << ((pairs[upper, 1] - low[pairs[upper, 0]]) % 12))
    return (
        np.minimum.reduceat(onset_s, first),
        np.maximum.reduceat(pitch, first),
        low,
        np.diff(np.r_[first, len(cluster)]),
        np.array([VOICINGS[b] for b in bits], dtype=object),
        np.maximum.reduceat(duration_s, first),
    )


def _harmony_words(onset_s: np.ndarray, end_s: np.ndarray, pitch: np.ndarray, tonic: int) -> str:
    chroma = progression.window_chroma(onset_s, end_s, pitch)
    sounding = chroma.sum(axis=1) > 0.1 * progression.WINDOW_S
    if sounding.sum() < 1:
        return ""
    unit = chroma[sounding] / np.linalg.norm(chroma[sounding], axis=1, keepdims=True)
    best = (unit @ progression.TEMPLATES.T).argmax(axis=1)
    starts = np.flatnonzero(np.r_[True, best[1:] != best[:-1]])
    roots = progression.TEMPLATE_ROOTS[best[starts]]
    qualities = progression.TEMPLATE_QUALITIES[best[starts]]
    return " ".join(
        f"h{(r - tonic) % 12}{QUALITY_NAMES[q]}" for r, q in zip(roots, qualities, strict=True)
    )


def song_words(song: pd.DataFrame, key_tonic: int) -> str:
    """The six lines of words of one song's pitched notes (columns onset_s, duration_s,
    pitch; drums already removed); empty lines for songs of fewer than four notes."""
    if len(song) < 4:
        return LINE_BREAK.join([""] * N_LINES)
    song = song.sort_values("onset_s", kind="stable")
    onset = song["onset_s"].to_numpy(float)
    pitch = song["pitch"].to_numpy(int)
    duration = np.maximum(song["duration_s"].to_numpy(float), 0.05)
    start, top, low, size, voicing, longest = _clusters(onset, pitch, duration)
    ioi = np.maximum(np.diff(start), 1e-3)
    rhythm = np.clip(np.round(np.log2(ioi[1:] / ioi[:-1])), -2, 2).astype(int)
    held = np.clip(np.round(2 * np.log2(longest[:-1] / ioi)), *ARTICULATION_RANGE).astype(int)
    melody_step = np.clip(np.diff(top), -MAX_STEP, MAX_STEP)[1:]
    bass_step = np.clip(np.diff(low), -MAX_STEP, MAX_STEP)[1:]
    # Python ints: formatting a numpy integer costs several times more (the same text)
    lines = [
        " ".join(f"m{s}r{r}" for s, r in zip(melody_step.tolist(), rhythm.tolist(), strict=True)),
        " ".join(f"b{s}" for s in bass_step.tolist()),
        " ".join(f"s{n}" for n in np.minimum(size, MAX_TEXTURE)[2:].tolist()),
        " ".join(v for v in voicing if v),
        " ".join(f"a{k}" for k in held.tolist()),
        _harmony_words(onset, onset + duration, pitch, int(key_tonic)),
    ]
    return LINE_BREAK.join(lines)


def words_column(notes: pd.DataFrame, ids: list[str], key_tonic: np.ndarray) -> np.ndarray:
    """``song_words`` of each file of ``ids`` (in that order), from ``notes.parquet`` rows."""
    pitched = notes[~notes["is_drum"].to_numpy(bool)]
    used = pitched[["onset_s", "duration_s", "pitch"]]  # only these: each song's are sorted
    by_file = dict(iter(used.groupby(pitched["file_id"].astype(str), sort=False)))
    empty = pd.DataFrame({"onset_s": [], "duration_s": [], "pitch": []})
    return np.array(
        [song_words(by_file.get(i, empty), int(k)) for i, k in zip(ids, key_tonic, strict=True)],
        dtype=object,
    )


def ngrams(text: str, n_max: int = 3) -> list[str]:
    """Every 1..n_max-gram of words within each line of ``text`` (the analyzer of the words
    model: a figure of the melody and a chord never make one n-gram)."""
    out: list[str] = []
    for line in text.split(LINE_BREAK):
        tokens = line.split()
        # zips of shifted token lists: the same n-grams in the same order as slicing, in
        # 60 % of the time (the words model's fits and predictions spend most of theirs here)
        for n in range(1, n_max + 1):
            out += map(" ".join, zip(*(tokens[k:] for k in range(n)), strict=False))
    return out
