"""Listening metrics and key finding on hand-made melodies with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from midiml.evaluate import listening as lm
from midiml.report import generators as generators_page
from midiml.represent.tonality import estimate_key

ODE = [64, 64, 65, 67, 67, 65, 64, 62, 60, 60, 62, 64, 64, 62, 62]


def test_key_of_short_tunes():
    assert estimate_key(ODE).name == "C major"  # plain Krumhansl says E minor, which lacks F
    assert estimate_key([69, 72, 76, 74, 72, 71, 68, 69, 64, 69]).name == "A minor"
    assert estimate_key([67]).tonic == 7


def test_metrics_of_a_continuation():
    up_a_tone = [p + 2 for p in ODE]  # D major: its five F#s are outside C major
    assert lm.key_consistency(ODE, ODE) == 1.0
    assert lm.key_consistency(ODE, up_a_tone) == pytest.approx(10 / 15)
    assert lm.register_distance(ODE, up_a_tone) == 2.0
    assert lm.step_ratio(ODE, ODE) == pytest.approx(1.0)
    assert lm.step_ratio(ODE, [60, 72, 60, 72]) > 5
    assert lm.repetition([60, 62, 64] * 5) > 0.6
    assert lm.repetition(list(range(40, 80))) > 0.9 > 0.5 > lm.repetition(ODE)


def test_two_sample_test_sees_leaps_and_not_copies():
    rng = np.random.default_rng(0)
    prompts = [list(60 + np.cumsum(rng.integers(-2, 3, 16))) for _ in range(30)]
    real = [list(p[-1] + np.cumsum(rng.integers(-2, 3, 16))) for p in prompts]
    copy = [list(p[-1] + np.cumsum(rng.integers(-2, 3, 16))) for p in prompts]
    leaps = [list(rng.integers(40, 90, 16)) for _ in prompts]

    def feats(xs):
        return np.array([lm.continuation_features(p, x) for p, x in zip(prompts, xs, strict=True)])

    same = lm.classifier_two_sample_accuracy(feats(real), feats(copy))
    apart = lm.classifier_two_sample_accuracy(feats(real), feats(leaps))
    assert apart > 0.9 and same < 0.75


def test_table_has_a_real_row_and_every_generator():
    prompt = {"pitch": np.array(ODE), "onset_s": np.arange(15.0)}
    cont = {"pitch": np.array(ODE[::-1]), "onset_s": np.arange(15.0) + 15}
    table = lm.listening_table([prompt] * 4, [cont] * 4, {"copy": [[cont, cont]] * 4})
    assert set(table) == {"real", "copy"}
    assert table["copy"]["n"] == 8 and table["real"]["key_consistency"] == 1.0
    assert "| real |" in generators_page.listening_table_md(table)
