"""The musical descriptors' frame counts and lag similarities are computed without a Python
step per note or per lag; these are the loops they replaced, and the numbers must be the
same to the last bit (the feature table, the classifiers' copies and their models read them)."""

from __future__ import annotations

import numpy as np
import pytest

from midiml.represent.musical import _lag_similarities, _sounding


def _loop_sounding(start, end, pc, n_frames):
    chroma = np.zeros((n_frames, 12))
    count = np.zeros(n_frames)
    for a, b, p in zip(start, end, pc, strict=True):
        chroma[a:b, p] += 1.0
        count[a:b] += 1.0
    return chroma, count


def _loop_lags(unit, active, lags, least):
    out = []
    for lag in lags:
        if lag >= len(unit) - 4:
            break
        both = active[:-lag] & active[lag:]
        if both.sum() < least:
            continue
        out.append((lag, float((unit[:-lag][both] * unit[lag:][both]).sum(axis=1).mean())))
    return out


@pytest.mark.parametrize("seed", range(6))
def test_frames_and_lag_similarities_are_the_loops_numbers(seed):
    rng = np.random.default_rng(seed)
    n_frames = int(rng.integers(5, 700))
    n_notes = int(rng.integers(1, 3000))
    start = rng.integers(0, n_frames, n_notes)
    end = np.minimum(start + rng.integers(1, 40, n_notes), n_frames)
    pc = rng.integers(0, 12, n_notes)
    chroma, count = _sounding(start, end, pc, n_frames)
    old_chroma, old_count = _loop_sounding(start, end, pc, n_frames)
    assert chroma.tobytes() == old_chroma.tobytes() and count.tobytes() == old_count.tobytes()
    chroma[rng.random(n_frames) < 0.3] = 0.0  # silent frames
    norm = np.linalg.norm(chroma, axis=1, keepdims=True)
    unit = np.divide(chroma, norm, out=np.zeros_like(chroma), where=norm > 0)
    active = chroma.sum(axis=1) > 0
    for lags, least in ((range(4, 65), 4), (range(64, 257, 2), 16)):
        new, old = (
            _lag_similarities(unit, active, lags, least),
            _loop_lags(unit, active, lags, least),
        )
        assert [lag for lag, _ in new] == [lag for lag, _ in old]
        assert np.array([s for _, s in new]).tobytes() == np.array([s for _, s in old]).tobytes()
