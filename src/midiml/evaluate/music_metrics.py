"""Music metrics: how well a generator predicts held-out notes and how its samples sound.

Prediction: ``bits_per_note`` (mean -log2 p(next pitch)) and top-k accuracy.
Samples (each a sequence of events ``[pitch, velocity, delta_onset, duration]``):

- ``repeat_rate``: share of notes whose pitch equals the previous note's;
- ``pitch_class_entropy``: entropy (bits, max log2 12) of the 12-bin pitch-class histogram;
- ``scale_consistency``: share of notes in the best-fitting major scale (12 transpositions;
  natural minor scales are the same sets), as in Mogren's C-RNN-GAN;
- ``pitch_range``: highest minus lowest pitch (semitones);
- overlapping area (Yang & Lerch 2020, "On the evaluation of generative models in music"):
  OA = integral of min(f, g), f and g Gaussian-KDE densities of a feature over the generated
  and the reference notes, for pitch, interval and inter-onset interval (IOI). 1 = the same
  distribution, 0 = disjoint. Yang & Lerch apply OA to intra-/inter-set distance
  distributions; here it is applied to the pooled per-note feature values directly.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import gaussian_kde

from midiml.represent.tonality import best_diatonic_share
from midiml.represent.windows import DELTA, PITCH

OA_FEATURES = ("pitch", "interval", "ioi")
MAX_KDE_POINTS = 4000


def bits_per_note(probs: np.ndarray, targets: np.ndarray) -> float:
    p = np.asarray(probs)[np.arange(len(targets)), np.asarray(targets).astype(np.int64)]
    return float(-np.log2(np.clip(p, 1e-300, None)).mean())


def topk_accuracy(probs: np.ndarray, targets: np.ndarray, k: int = 1) -> float:
    top = np.argsort(-np.asarray(probs), axis=1, kind="stable")[:, :k]
    return float((top == np.asarray(targets).astype(np.int64)[:, None]).any(axis=1).mean())


def repeat_rate(pitches: np.ndarray) -> float:
    p = np.asarray(pitches)
    return float(np.mean(p[1:] == p[:-1])) if len(p) > 1 else 0.0


def pitch_class_entropy(pitches: np.ndarray) -> float:
    hist = np.bincount(np.asarray(pitches).astype(np.int64) % 12, minlength=12).astype(float)
    if hist.sum() == 0:
        return 0.0
    p = hist[hist > 0] / hist.sum()
    return float(-(p * np.log2(p)).sum())


def scale_consistency(pitches: np.ndarray) -> float:
    """Share of notes in the best-fitting diatonic scale (``tonality.best_diatonic_share``)."""
    return best_diatonic_share(pitches)


def pitch_range(pitches: np.ndarray) -> float:
    p = np.asarray(pitches)
    return float(p.max() - p.min()) if len(p) else 0.0


def feature_values(sequences: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Pooled pitch, interval (within a sequence) and IOI (delta-onset) values."""
    pitch, interval, ioi = [], [], []
    for s in sequences:
        s = np.asarray(s, np.float64)
        if len(s) == 0:
            continue
        pitch.append(s[:, PITCH])
        interval.append(np.diff(s[:, PITCH]))
        ioi.append(s[1:, DELTA])
    cat = {"pitch": pitch, "interval": interval, "ioi": ioi}
    return {k: np.concatenate(v) if v else np.zeros(0) for k, v in cat.items()}


def _subsample(x: np.ndarray, n: int = MAX_KDE_POINTS) -> np.ndarray:
    """Evenly spaced over the sorted values: deterministic and keeps the distribution."""
    if len(x) <= n:
        return x
    return np.sort(x)[np.linspace(0, len(x) - 1, n).round().astype(np.int64)]


def overlapping_area(a: np.ndarray, b: np.ndarray, grid: int = 1024) -> float:
    """OA of the Gaussian-KDE densities of two samples of one feature (0..1)."""
    a, b = _subsample(np.asarray(a, float)), _subsample(np.asarray(b, float))
    if len(a) < 2 or len(b) < 2:
        return 0.0
    lo, hi = min(a.min(), b.min()), max(a.max(), b.max())
    span = hi - lo
    if span <= 0:
        return 1.0 if np.isclose(a.mean(), b.mean()) else 0.0
    xs = np.linspace(lo - 0.1 * span, hi + 0.1 * span, grid)
    dens = []
    for x in (a, b):
        # jitter-free fallback when a sample is constant: a narrow bump at its value
        dens.append(
            gaussian_kde(x)(xs)
            if np.ptp(x) > 0
            else np.exp(-0.5 * ((xs - x[0]) / (0.01 * span)) ** 2)
        )
    f, g = (d / np.trapezoid(d, xs) for d in dens)
    return float(np.clip(np.trapezoid(np.minimum(f, g), xs), 0.0, 1.0))


def sample_statistics(
    samples: list[np.ndarray], reference: dict[str, np.ndarray]
) -> dict[str, float]:
    """Per-sample statistics averaged over samples, and OA against ``reference`` values."""
    stats = {
        "repeat_rate": np.mean([repeat_rate(s[:, PITCH]) for s in samples]),
        "pitch_class_entropy": np.mean([pitch_class_entropy(s[:, PITCH]) for s in samples]),
        "scale_consistency": np.mean([scale_consistency(s[:, PITCH]) for s in samples]),
        "pitch_range": np.mean([pitch_range(s[:, PITCH]) for s in samples]),
    }
    values = feature_values(samples)
    for f in OA_FEATURES:
        stats[f"oa_{f}"] = overlapping_area(values[f], reference[f])
    stats["oa_mean"] = float(np.mean([stats[f"oa_{f}"] for f in OA_FEATURES]))
    return {k: round(float(v), 6) for k, v in stats.items()}
