"""Chord progressions: the chord of every half second and how the roots move between chords.

The onset-cluster chords of ``musical.py`` see a broken chord as a run of single notes. Here
each note sounds for its whole duration in every ``WINDOW_S`` window it overlaps, so a held,
comped, rolled or quickly broken chord gives the same window chroma (a slow arpeggio's first
window holds part of the chord: a change of quality on the same root). Each window is labelled with
the best-matching chord template (root x quality, the lowest note weighted up as a likely
root); runs of one label make a chord, and the root step between successive chords is the
syntax of the harmony: classical cadences fall by fifths from dominant sevenths, loops and
game themes move by steps and thirds between plain triads and sevenths.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

WINDOW_S = 0.5
MAX_WINDOWS = 20_000  # ~2.8 h of music: longer files are measured on their first part
BASS_WEIGHT = 0.5  # extra weight of the lowest sounding pitch class (as a share of the mean)
QUALITIES = {  # intervals above the root
    "maj": (0, 4, 7),
    "min": (0, 3, 7),
    "dom7": (0, 4, 7, 10),
    "maj7": (0, 4, 7, 11),
    "min7": (0, 3, 7, 10),
    "dim": (0, 3, 6),
}
PROGRESSION_DOCS: dict[str, str] = {
    **{
        f"h_window_{q}": f"share of sounding half-second windows whose best chord is {q}"
        for q in QUALITIES
    },
    **{
        f"h_root_step_{k}": f"share of chord changes whose root moves up {k} semitones (mod 12)"
        for k in range(12)
    },
    "h_dominant_fifth": "share of chord changes from a dominant seventh to the root a fifth "
    "below (the classical cadence)",
    "h_changes_per_s": "chord changes per second of sounding music (harmonic rhythm, "
    "arpeggios included)",
    "h_chord_median_s": "median length (s) of a chord",
    "h_template_fit": "mean cosine of each window's chroma with its best chord template "
    "(how chordal the harmony is)",
}
PROGRESSION_NAMES = list(PROGRESSION_DOCS)


def _templates() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unit-norm chroma templates with their roots and quality indices."""
    rows, roots, quals = [], [], []
    for qi, intervals in enumerate(QUALITIES.values()):
        for root in range(12):
            t = np.zeros(12)
            t[[(root + i) % 12 for i in intervals]] = 1.0
            rows.append(t / np.linalg.norm(t))
            roots.append(root)
            quals.append(qi)
    return np.array(rows), np.array(roots), np.array(quals)


TEMPLATES, TEMPLATE_ROOTS, TEMPLATE_QUALITIES = _templates()


def window_chroma(onset_s: np.ndarray, end_s: np.ndarray, pitch: np.ndarray) -> np.ndarray:
    """(windows, 12) seconds each pitch class sounds in each window, the lowest sounding
    pitch class of a window weighted up by ``BASS_WEIGHT``."""
    n_win = min(int(np.ceil(end_s.max() / WINDOW_S)) + 1, MAX_WINDOWS)
    first = np.minimum(np.floor(onset_s / WINDOW_S).astype(int), n_win - 1)
    last = np.minimum(np.floor(end_s / WINDOW_S).astype(int), n_win - 1)
    span = last - first + 1
    note = np.repeat(np.arange(len(onset_s)), span)
    win = first[note] + np.arange(len(note)) - np.repeat(np.cumsum(span) - span, span)
    overlap = np.minimum(end_s[note], (win + 1) * WINDOW_S) - np.maximum(
        onset_s[note], win * WINDOW_S
    )
    chroma = np.zeros((n_win, 12))
    np.add.at(chroma, (win, pitch[note] % 12), np.maximum(overlap, 0.0))
    lowest = np.full(n_win, 1000)
    np.minimum.at(lowest, win, pitch[note])
    has = np.flatnonzero(lowest < 1000)
    mean = chroma[has].sum(axis=1) / np.maximum((chroma[has] > 0).sum(axis=1), 1)
    chroma[has, lowest[has] % 12] += BASS_WEIGHT * mean
    return chroma


def progression_features(song: pd.DataFrame) -> dict[str, float]:
    """PROGRESSION_NAMES of one file's pitched notes (drums already removed)."""
    out = dict.fromkeys(PROGRESSION_NAMES, 0.0)
    if len(song) < 3:
        return out
    onset = song["onset_s"].to_numpy(float)
    end = onset + np.maximum(song["duration_s"].to_numpy(float), 0.05)
    chroma = window_chroma(onset, end, song["pitch"].to_numpy(int))
    sounding = chroma.sum(axis=1) > 0.1 * WINDOW_S
    if sounding.sum() < 2:
        return out
    unit = chroma[sounding] / np.linalg.norm(chroma[sounding], axis=1, keepdims=True)
    fit = unit @ TEMPLATES.T
    best = fit.argmax(axis=1)
    out["h_template_fit"] = float(fit.max(axis=1).mean())
    root, quality = TEMPLATE_ROOTS[best], TEMPLATE_QUALITIES[best]
    for qi, q in enumerate(QUALITIES):
        out[f"h_window_{q}"] = float((quality == qi).mean())
    change = np.r_[True, best[1:] != best[:-1]]
    starts = np.flatnonzero(change)
    out["h_changes_per_s"] = float((len(starts) - 1) / (sounding.sum() * WINDOW_S))
    out["h_chord_median_s"] = float(np.median(np.diff(np.r_[starts, len(best)])) * WINDOW_S)
    if len(starts) > 1:
        r, q = root[starts], quality[starts]
        step = (r[1:] - r[:-1]) % 12
        share = np.bincount(step, minlength=12) / len(step)
        for k in range(12):
            out[f"h_root_step_{k}"] = float(share[k])
        dom7 = list(QUALITIES).index("dom7")
        out["h_dominant_fifth"] = float(((q[:-1] == dom7) & (step == 5)).mean())
    return out
