"""Music metrics on hand-made sequences with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from midiml.evaluate.music_metrics import (
    bits_per_note,
    overlapping_area,
    pitch_class_entropy,
    pitch_range,
    repeat_rate,
    sample_statistics,
    scale_consistency,
    topk_accuracy,
)


def _events(pitches: list[int], ioi: float = 0.25) -> np.ndarray:
    n = len(pitches)
    return np.stack([pitches, [80] * n, [ioi] * n, [0.2] * n], axis=1).astype(np.float32)


def test_repeat_rate_and_range():
    assert repeat_rate([60, 60, 62, 62, 62]) == pytest.approx(3 / 4)
    assert repeat_rate([60, 62, 64]) == 0.0
    assert pitch_range([60, 72, 55]) == 17


def test_pitch_class_entropy_bounds():
    assert pitch_class_entropy([60, 72, 84]) == 0.0  # one pitch class
    assert pitch_class_entropy(list(range(60, 72))) == pytest.approx(math.log2(12))


def test_scale_consistency():
    c_major = [60, 62, 64, 65, 67, 69, 71, 72]
    assert scale_consistency(c_major) == 1.0
    assert scale_consistency([p + 3 for p in c_major]) == 1.0  # E-flat major fits too
    assert scale_consistency(list(range(60, 72))) == pytest.approx(7 / 12)


def test_bits_and_topk():
    probs = np.array([[0.5, 0.25, 0.25], [0.1, 0.1, 0.8]])
    assert bits_per_note(probs, np.array([0, 2])) == pytest.approx((1 + -math.log2(0.8)) / 2)
    assert topk_accuracy(probs, np.array([1, 2]), 1) == 0.5
    assert topk_accuracy(probs, np.array([1, 2]), 2) == 1.0


def test_overlapping_area_identical_vs_disjoint():
    rng = np.random.default_rng(0)
    a = rng.normal(60, 3, 2000)
    assert overlapping_area(a, a) == pytest.approx(1.0, abs=1e-3)
    assert overlapping_area(a, rng.normal(60, 3, 2000)) > 0.9
    assert overlapping_area(a, a + 40) < 0.01


def test_sample_statistics_prefers_samples_like_the_reference():
    rng = np.random.default_rng(1)
    ref_seqs = [_events(list(rng.integers(55, 75, 64))) for _ in range(10)]
    from midiml.evaluate.music_metrics import feature_values

    reference = feature_values(ref_seqs)
    good = sample_statistics([_events(list(rng.integers(55, 75, 64))) for _ in range(5)], reference)
    stuck = sample_statistics([_events([60] * 64) for _ in range(5)], reference)
    assert stuck["repeat_rate"] == 1.0
    assert good["oa_mean"] > stuck["oa_mean"]
    assert set(good) >= {
        "repeat_rate",
        "pitch_class_entropy",
        "scale_consistency",
        "pitch_range",
        "oa_pitch",
        "oa_interval",
        "oa_ioi",
        "oa_mean",
    }
