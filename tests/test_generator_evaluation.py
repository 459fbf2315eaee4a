"""Generator evaluation: the metrics of ``evaluate.generators`` on cases with known answers,
and ``generate.heldout`` giving every model the same windows and prompts."""

from __future__ import annotations

import numpy as np
import pytest

from midiml.evaluate import generators as ev
from midiml.generate import heldout
from midiml.generate.markov import MarkovGenerator
from tests.test_generators import scale_data


def test_uniform_predictions_cost_seven_bits_per_note():
    probs = np.full((10, 128), 1 / 128)
    m = ev.prediction_metrics(probs, np.arange(10))
    assert m["test_bits_per_note"] == pytest.approx(7.0)
    assert m["test_top1"] == pytest.approx(0.0, abs=0.11)
    assert m["test_windows"] == 10


def test_certain_right_predictions_cost_nothing_and_hit_top1():
    targets = np.array([60, 62, 64])
    probs = np.zeros((3, 128))
    probs[np.arange(3), targets] = 1.0
    m = ev.prediction_metrics(probs, targets)
    assert m["test_bits_per_note"] == pytest.approx(0.0, abs=1e-9)
    assert m["test_top1"] == 1.0 and m["test_top5"] == 1.0


def test_real_continuations_match_their_own_songs_better_than_noise():
    data = scale_data(n_songs=8, length=90)
    songs = heldout.test_songs(data)
    reference = ev.reference_values(songs)
    _, real, ids = heldout.prompt_segments(data, n_prompts=5, prompt_len=16, n_new=16)
    assert len(real) == len(ids) == 1  # one test song in scale_data
    real_stats = ev.real_metrics(real, reference, len(songs))
    noise = [r.copy() for r in real]
    rng = np.random.default_rng(0)
    for n in noise:
        n[:, 0] = rng.integers(20, 110, len(n))
    noise_stats = ev.sample_metrics(noise, reference)
    assert real_stats["sample_oa_pitch"] > noise_stats["sample_oa_pitch"]
    assert real_stats["n_prompts"] == 1 and real_stats["test_songs"] == len(songs)


def test_every_model_gets_the_same_test_windows_and_prompts():
    data = scale_data()
    gen = MarkovGenerator(order=3).fit_data(data)
    probs, y = heldout.test_predictions(gen, data)
    x, y2 = heldout.evaluation_windows(data)
    assert probs.shape == (len(x), 128) and np.array_equal(y, y2)

    class Sampling(dict):
        __getattr__ = dict.__getitem__

    sampling = Sampling(n_prompts=3, prompt_len=8, n_new=8, temperature=1.0, top_k=0, seed=1)
    p1, s1 = heldout.sample_continuations(gen, data, sampling)
    p2, s2 = heldout.sample_continuations(gen, data, sampling)
    assert all(np.array_equal(a, b) for a, b in zip(p1, p2, strict=True))
    assert all(np.array_equal(a, b) for a, b in zip(s1, s2, strict=True))


def test_targets_compare_the_best_neural_model_with_markov():
    results = {
        "markov": {"test_bits_per_note": 5.0},
        "ffnn": {"test_bits_per_note": 4.0, "sample_repeat_rate": 0.02, "sample_oa_mean": 0.9},
        "note_lstm": {"test_bits_per_note": 4.5, "sample_repeat_rate": 0.5, "sample_oa_mean": 0.5},
        "real": {"sample_repeat_rate": 0.02},
    }
    t = ev.targets(results, ["ffnn", "note_lstm"])
    assert t["best_neural"] == "ffnn"
    assert t["bits_ratio_to_markov"] == pytest.approx(0.8)
    assert t["bits_target_met"] and t["repeat_target_met"] and t["oa_target_met"]
    assert ev.targets(results, []) == {}
