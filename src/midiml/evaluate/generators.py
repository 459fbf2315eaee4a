"""Metrics of next-note generators, from predictions and sampled continuations (pure functions).

``midiml.generate.heldout`` produces what is measured here: pitch probabilities on the test
windows, and continuations of the same test prompts for every model.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from midiml.evaluate.music_metrics import (
    bits_per_note,
    feature_values,
    sample_statistics,
    topk_accuracy,
)


def reference_values(songs: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Per-note feature values of the reference songs (all test songs)."""
    return feature_values(songs)


def prediction_metrics(probs: np.ndarray, targets: np.ndarray) -> dict[str, float]:
    """Bits per note and top-1/top-5 accuracy of next-pitch distributions."""
    return {
        "test_bits_per_note": round(bits_per_note(probs, targets), 6),
        "test_top1": round(topk_accuracy(probs, targets, 1), 6),
        "test_top5": round(topk_accuracy(probs, targets, 5), 6),
        "test_windows": int(len(targets)),
    }


def sample_metrics(samples: list[np.ndarray], reference: dict[str, np.ndarray]) -> dict[str, float]:
    """``sample_*`` statistics of continuations against the reference songs."""
    return {f"sample_{k}": v for k, v in sample_statistics(samples, reference).items()}


def real_metrics(
    real: list[np.ndarray], reference: dict[str, np.ndarray], test_songs: int
) -> dict[str, Any]:
    """The same statistics for the real continuations of the prompts (the reference row)."""
    return {**sample_metrics(real, reference), "n_prompts": len(real), "test_songs": test_songs}


def targets(results: dict[str, dict[str, Any]], neural: list[str]) -> dict[str, Any]:
    """The generator targets, checked by code: bits vs. Markov's, the best model's samples."""
    present = [n for n in neural if n in results]
    if not present or "markov" not in results:
        return {}
    best = min(present, key=lambda n: results[n]["test_bits_per_note"])
    ratio = results[best]["test_bits_per_note"] / results["markov"]["test_bits_per_note"]
    real_rr = results["real"]["sample_repeat_rate"]
    rr = results[best]["sample_repeat_rate"]
    rep_ratio = rr / real_rr if real_rr > 0 else None
    return {
        "best_neural": best,
        "bits_ratio_to_markov": round(ratio, 6),
        "bits_target_met": bool(ratio <= 0.85),
        "repeat_ratio_to_real": None if rep_ratio is None else round(rep_ratio, 6),
        "repeat_target_met": bool(rep_ratio is not None and 0.5 <= rep_ratio <= 1.5),
        "oa_target_met": bool(results[best]["sample_oa_mean"] >= 0.70),
    }
