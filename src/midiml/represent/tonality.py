"""Key, scale and register of a handful of notes: what a listener hears as "the prompt's key".

Key finding is Krumhansl-Kessler (correlate the pitch-class histogram with the 24 rotated
major/minor key profiles) plus a coverage term: the share of the notes that lie in the key's
scale counts twice the correlation. On a 15-note tune correlation alone can pick a key that
misses a pitch the tune plays (Ode to Joy came out E minor, whose scale has no F); coverage
first keeps the key a listener would name. No training data, so it works on a 1-note prompt as
well as on a sonata, and the sampling guards (generate/) and listening metrics (evaluate/)
share one definition of "in key".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAJOR_PROFILE = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
MINOR_PROFILE = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])
MAJOR_SCALE = (0, 2, 4, 5, 7, 9, 11)
# natural minor plus the raised 7th (harmonic minor's leading tone), as minor tunes use both
MINOR_SCALE = (0, 2, 3, 5, 7, 8, 10, 11)
COVERAGE_WEIGHT = 2.0
PITCH_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")


@dataclass(frozen=True)
class Key:
    tonic: int  # pitch class 0..11
    mode: str  # "major" | "minor"
    score: float  # correlation with the key profile

    @property
    def scale(self) -> np.ndarray:
        """Boolean (12,) mask of the pitch classes in this key's scale."""
        steps = MAJOR_SCALE if self.mode == "major" else MINOR_SCALE
        mask = np.zeros(12, bool)
        mask[[(self.tonic + s) % 12 for s in steps]] = True
        return mask

    @property
    def name(self) -> str:
        return f"{PITCH_NAMES[self.tonic]} {self.mode}"


def pitch_class_histogram(pitches: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    pcs = np.asarray(pitches, np.int64) % 12
    w = np.ones(len(pcs)) if weights is None else np.clip(np.asarray(weights, float), 1e-3, None)
    return np.bincount(pcs, weights=w, minlength=12).astype(np.float64)


def estimate_key(pitches: np.ndarray, durations: np.ndarray | None = None) -> Key:
    """Best of the 24 major/minor keys for these notes (C major for no notes)."""
    hist = pitch_class_histogram(pitches, durations)
    if hist.sum() <= 0:
        return Key(0, "major", 0.0)
    best = Key(0, "major", -np.inf)
    for mode, profile in (("major", MAJOR_PROFILE), ("minor", MINOR_PROFILE)):
        for tonic in range(12):
            prof = np.roll(profile, tonic)
            key = Key(tonic, mode, 0.0)
            coverage = float(hist[key.scale].sum() / hist.sum())
            score = COVERAGE_WEIGHT * coverage + float(np.corrcoef(hist, prof)[0, 1])
            if score > best.score + 1e-12:
                best = Key(tonic, mode, score)
    return best


def in_key_share(new_pitches: np.ndarray, key: Key) -> float:
    """Share of ``new_pitches`` whose pitch class is in ``key``'s scale (nan for none)."""
    p = np.asarray(new_pitches, np.int64)
    if len(p) == 0:
        return float("nan")
    return float(key.scale[p % 12].mean())
