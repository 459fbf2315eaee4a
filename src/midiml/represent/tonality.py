"""The project's one music-theory module: key profiles, scales, key finding and "in key".

Every user reads its constants and functions from here (the feature table, the musical
descriptors, the sampling guards, the listening metrics, the VAE metrics, the generator
metrics), so "the minor scale" or "the Krumhansl profile" means one thing everywhere.

- Profiles: Krumhansl-Kessler's major and minor key profiles (probe-tone ratings).
- Scales: major, and minor as the natural minor plus the raised 7th (harmonic minor's
  leading tone), because minor tunes use both; a note is "in key" when its pitch class is
  in the key's scale. ``DIATONIC`` is the 12 major-scale sets (a natural minor scale is one
  of them), for "best-fitting diatonic scale" measures that need no mode.
- Two key finders, on purpose:
  ``estimate_key`` (one song or prompt, any length): Krumhansl-Kessler correlation plus a
  coverage term, the share of the notes in the key's scale counted twice the correlation.
  On a 15-note tune correlation alone can pick a key that misses a pitch the tune plays
  (Ode to Joy came out E minor, whose scale has no F); coverage first keeps the key a
  listener would name. No training data, so it works on a 1-note prompt as on a sonata.
  ``music21_keys`` (the feature table, many files at once): music21's
  Krumhansl-Schmuckler (tonic by the largest profile convolution, mode by the larger
  correlation), vectorised, so the ``key_*`` features agree with music21's, which tests
  cross-check.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAJOR_PROFILE = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
MINOR_PROFILE = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])
MAJOR_SCALE = (0, 2, 4, 5, 7, 9, 11)
# natural minor plus the raised 7th (harmonic minor's leading tone), as minor tunes use both
MINOR_SCALE = (0, 2, 3, 5, 7, 8, 10, 11)
MODES = ("major", "minor")
COVERAGE_WEIGHT = 2.0
PITCH_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")


def rotations(row: np.ndarray) -> np.ndarray:
    """(12 × 12): row t is ``row`` for tonic t, i.e. ``W[t, j] = row[(j - t) % 12]``."""
    idx = (np.arange(12)[None, :] - np.arange(12)[:, None]) % 12
    return np.asarray(row)[idx]


def scale_row(steps: tuple[int, ...]) -> np.ndarray:
    """0/1 (12,) membership of the pitch classes ``steps`` above a C tonic."""
    out = np.zeros(12)
    out[list(steps)] = 1.0
    return out


# (24 × 12) 0/1 membership: rows 0-11 the major scales on each tonic, rows 12-23 the minor
SCALE_MASKS = np.vstack([rotations(scale_row(MAJOR_SCALE)), rotations(scale_row(MINOR_SCALE))])
# (12 × 12) 0/1: the diatonic (major-scale) pitch-class set of each tonic
DIATONIC = SCALE_MASKS[:12]


@dataclass(frozen=True)
class Key:
    tonic: int  # pitch class 0..11
    mode: str  # "major" | "minor"
    score: float  # estimate_key's score (coverage and correlation)

    @property
    def scale(self) -> np.ndarray:
        """Boolean (12,) mask of the pitch classes in this key's scale."""
        return SCALE_MASKS[self.tonic + 12 * MODES.index(self.mode)].astype(bool)

    @property
    def name(self) -> str:
        return f"{PITCH_NAMES[self.tonic]} {self.mode}"


def pitch_class_histogram(pitches: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """12-bin histogram of ``pitches`` mod 12, by count or by ``weights`` (e.g. durations)."""
    pcs = np.asarray(pitches, np.int64) % 12
    w = np.ones(len(pcs)) if weights is None else np.clip(np.asarray(weights, float), 1e-3, None)
    return np.bincount(pcs, weights=w, minlength=12).astype(np.float64)


def estimate_key(pitches: np.ndarray, durations: np.ndarray | None = None) -> Key:
    """Best of the 24 major/minor keys for these notes (C major for no notes); the
    histogram is weighted by ``durations`` when given."""
    hist = pitch_class_histogram(pitches, durations)
    if hist.sum() <= 0:
        return Key(0, "major", 0.0)
    best = Key(0, "major", -np.inf)
    for mode, profile in zip(MODES, (MAJOR_PROFILE, MINOR_PROFILE), strict=True):
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


def key_consistency(
    prompt_pitches: np.ndarray,
    new_pitches: np.ndarray,
    prompt_durations: np.ndarray | None = None,
) -> float:
    """Share of new notes in the prompt's key scale (``estimate_key`` of the prompt, by
    duration when ``prompt_durations`` is given); real continuations score ~0.9-1."""
    return in_key_share(new_pitches, estimate_key(prompt_pitches, prompt_durations))


def music21_keys(pc_weighted: np.ndarray) -> dict[str, np.ndarray]:
    """music21's Krumhansl-Schmuckler key for each row of a (files × 12) weighted histogram.

    Follows music21's KeyWeightKeyAnalysis: per mode, the tonic maximises the convolution
    with the profile; between the two candidates the larger correlation decides the mode.
    Returns ``key_tonic``, ``key_mode`` (1 major), ``key_corr`` and ``key_clarity`` (best
    minus second-best correlation over the 24 keys).
    """
    d = np.asarray(pc_weighted, dtype=float)
    dc = d - d.mean(axis=1, keepdims=True)
    dn = np.sqrt((dc**2).sum(axis=1, keepdims=True))
    out_corr = []
    out_tonic = []
    for prof in (MAJOR_PROFILE, MINOR_PROFILE):
        w = rotations(prof)
        conv = d @ w.T
        wc = w - prof.mean()
        wn = np.sqrt((wc**2).sum(axis=1))
        with np.errstate(invalid="ignore", divide="ignore"):
            corr = np.where(dn > 0, (dc @ wc.T) / (dn * wn[None, :]), 0.0)
        # music21 sorts (value, pc) descending, so ties go to the higher pitch class
        tonic = 11 - np.argmax(conv[:, ::-1], axis=1)
        out_tonic.append(tonic)
        out_corr.append(corr)
    rows = np.arange(len(d))
    c_major = out_corr[0][rows, out_tonic[0]]
    c_minor = out_corr[1][rows, out_tonic[1]]
    major = c_major >= c_minor
    all_corr = np.sort(np.concatenate(out_corr, axis=1), axis=1)
    return {
        "key_tonic": np.where(major, out_tonic[0], out_tonic[1]).astype(float),
        "key_mode": major.astype(float),
        "key_corr": np.where(major, c_major, c_minor),
        "key_clarity": all_corr[:, -1] - all_corr[:, -2],
    }


def best_diatonic_share(pitches: np.ndarray) -> float:
    """Share of notes in the best-fitting diatonic scale of the 12 (0 for no notes)."""
    pc = np.asarray(pitches).astype(np.int64) % 12
    if len(pc) == 0:
        return 0.0
    return float((DIATONIC @ np.bincount(pc, minlength=12)).max() / len(pc))
