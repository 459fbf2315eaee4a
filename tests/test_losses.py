"""Repetition/similarity and tone-deaf losses: values match the documented formulas."""

from __future__ import annotations

import math

import pytest
import torch

from midiml.generate.losses import (
    repetition_loss,
    soft_repeat_count,
    soft_similarity_count,
    tonedeaf_loss,
)


def _logits_for(probs: torch.Tensor) -> torch.Tensor:
    return probs.clamp_min(1e-12).log()


def test_soft_counts_are_probability_mass_on_previous_and_window_pitches():
    probs = torch.zeros(2, 128)
    probs[0, 60], probs[0, 62], probs[0, 70] = 0.5, 0.3, 0.2
    probs[1, 64] = 1.0
    window = torch.tensor([[62, 64, 60], [60, 62, 64]])
    assert soft_repeat_count(probs, window).tolist() == pytest.approx([0.5, 1.0])
    assert soft_repeat_count(probs, window, rep_context=2).tolist() == pytest.approx([0.5, 1.0])
    assert soft_similarity_count(probs, window).tolist() == pytest.approx([0.8, 1.0])


def test_repetition_loss_formula_and_alpha():
    probs = torch.full((1, 128), 0.5 / 127)
    probs[0, 60] = 0.5  # half the mass repeats the last note
    logits = _logits_for(probs)
    window = torch.tensor([[50, 55, 60]])
    target = torch.tensor([62])
    ce = -math.log(0.5 / 127)
    for alpha in (1.0, 1.5, 2.0):
        total, parts = repetition_loss(
            logits, target, window, alpha=alpha, lambda_rep=2.0, lambda_sim=1.0
        )
        n_rep, n_sim = 0.5, 0.5 + 2 * 0.5 / 127
        assert float(parts["n_rep"]) == pytest.approx(n_rep, rel=1e-4)
        assert float(parts["n_sim"]) == pytest.approx(n_sim, rel=1e-4)
        assert float(total) == pytest.approx(ce + 2.0 * n_rep**alpha + n_sim**alpha, rel=1e-4)
    plain, _ = repetition_loss(logits, target, window)
    assert float(plain) == pytest.approx(ce, rel=1e-4)  # lambdas 0 -> cross-entropy


def test_repetition_penalty_pushes_mass_away_from_the_repeat():
    logits = torch.zeros(1, 128, requires_grad=True)
    window = torch.tensor([[10, 20, 60]])
    total, _ = repetition_loss(logits, torch.tensor([61]), window, alpha=1.5, lambda_rep=5.0)
    total.backward()
    assert logits.grad[0, 60] > 0  # gradient descent lowers the repeated pitch's logit
    no_pen = torch.zeros(1, 128, requires_grad=True)
    repetition_loss(no_pen, torch.tensor([61]), window)[0].backward()
    assert logits.grad[0, 60] > no_pen.grad[0, 60]


def test_tonedeaf_loss_weights_and_jump_term():
    max_iv = 48
    logits = torch.full((1, 2 * max_iv + 1), -1e9)
    logits[0, max_iv + 2] = 0.0  # +2 semitones
    logits[0, max_iv + 20] = 0.0  # +20: a jump over an octave
    dur = torch.tensor([0.3])
    total, parts = tonedeaf_loss(
        logits, torch.tensor([2]), dur, torch.tensor([0.1]), w_int=2.0, w_dur=1.0, w_jump=0.1
    )
    assert float(parts["l_int"]) == pytest.approx(math.log(2), rel=1e-4)
    assert float(parts["l_dur"]) == pytest.approx(0.04, rel=1e-4)
    assert float(parts["l_jump"]) == pytest.approx(0.5, rel=1e-4)
    assert float(total) == pytest.approx(2 * math.log(2) + 0.04 + 0.05, rel=1e-4)
