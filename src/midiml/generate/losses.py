"""Losses of the seed study, made differentiable.

Repetition / similarity loss (ffnn). With p_b = softmax(logits_b) over the 128 pitches,
x_b the input window's pitches and y_b the target pitch of example b in a batch of B:

    CE     = -(1/B) sum_b log p_b(y_b)
    N_rep  =  (1/B) sum_b sum_{v in R_b} p_b(v),  R_b = the last ``rep_context`` pitches of x_b
    N_sim  =  (1/B) sum_b sum_{v in S_b} p_b(v),  S_b = all pitches of x_b
    L      =  CE + lambda_rep * N_rep ** alpha + lambda_sim * N_sim ** alpha

N_rep is the expected number of predictions that repeat the previous note(s) (a soft count:
the probability mass on them instead of an argmax), divided by B so the weights do not
depend on the batch size; N_sim likewise counts predictions already seen in the input window.

Tone-deaf loss (lstm_tonedeaf). With q_b = softmax over interval classes -J..J (J =
``max_interval``), i_b the target interval (clipped to +-J), d_b / d^_b the target / predicted
log-duration and m the jump threshold (12 semitones):

    L_int  = -(1/B) sum_b log q_b(i_b)
    L_dur  =  (1/B) sum_b (d^_b - d_b) ** 2
    L_jump =  (1/B) sum_b sum_{|i| > m} q_b(i)     (probability of jumping more than an octave)
    L      =  w_int * L_int + w_dur * L_dur + w_jump * L_jump   (seed defaults 2.0 / 1.0 / 0.1)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

N_PITCHES = 128


def _membership(pitches: torch.Tensor, n_classes: int = N_PITCHES) -> torch.Tensor:
    """(B, k) integer pitches -> (B, n_classes) 0/1 mask of the pitches present."""
    mask = torch.zeros(pitches.shape[0], n_classes, device=pitches.device)
    return mask.scatter_(1, pitches.long().clamp(0, n_classes - 1), 1.0)


def soft_repeat_count(
    probs: torch.Tensor, window_pitches: torch.Tensor, rep_context: int = 1
) -> torch.Tensor:
    """Per-example probability mass on the last ``rep_context`` input pitches, shape (B,)."""
    mask = _membership(window_pitches[:, -rep_context:], probs.shape[1])
    return (probs * mask).sum(dim=1)


def soft_similarity_count(probs: torch.Tensor, window_pitches: torch.Tensor) -> torch.Tensor:
    """Per-example probability mass on any pitch of the input window, shape (B,)."""
    return (probs * _membership(window_pitches, probs.shape[1])).sum(dim=1)


def _power(x: torch.Tensor, alpha: float) -> torch.Tensor:
    return x.clamp_min(1e-8) ** alpha  # clamp keeps the gradient finite for alpha < 1


def repetition_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    window_pitches: torch.Tensor,
    alpha: float = 1.0,
    lambda_rep: float = 0.0,
    lambda_sim: float = 0.0,
    rep_context: int = 1,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """CE + lambda_rep * N_rep**alpha + lambda_sim * N_sim**alpha (see the module docstring)."""
    logits = logits.float()
    ce = F.cross_entropy(logits, target.long())
    probs = logits.softmax(dim=1)
    n_rep = soft_repeat_count(probs, window_pitches, rep_context).mean()
    n_sim = soft_similarity_count(probs, window_pitches).mean()
    total = ce + lambda_rep * _power(n_rep, alpha) + lambda_sim * _power(n_sim, alpha)
    return total, {"ce": ce.detach(), "n_rep": n_rep.detach(), "n_sim": n_sim.detach()}


def tonedeaf_loss(
    interval_logits: torch.Tensor,
    interval_target: torch.Tensor,
    duration_pred: torch.Tensor,
    duration_target: torch.Tensor,
    w_int: float = 2.0,
    w_dur: float = 1.0,
    w_jump: float = 0.1,
    max_interval: int = 48,
    jump: int = 12,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """w_int * L_interval + w_dur * L_duration + w_jump * L_jump (see the module docstring).

    ``interval_target`` holds intervals in semitones; class index = interval + max_interval.
    """
    interval_logits = interval_logits.float()
    cls = interval_target.long().clamp(-max_interval, max_interval) + max_interval
    l_int = F.cross_entropy(interval_logits, cls)
    l_dur = F.mse_loss(duration_pred.float(), duration_target.float())
    probs = interval_logits.softmax(dim=1)
    values = torch.arange(-max_interval, max_interval + 1, device=probs.device)
    l_jump = (probs * (values.abs() > jump).float()).sum(dim=1).mean()
    total = w_int * l_int + w_dur * l_dur + w_jump * l_jump
    return total, {"l_int": l_int.detach(), "l_dur": l_dur.detach(), "l_jump": l_jump.detach()}
