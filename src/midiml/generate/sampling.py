"""Autoregressive continuation of event prompts with temperature, top-k and a seed.

Every generator predicts the next *pitch*; the rest of each new event (velocity,
delta-onset, duration) is the prompt's own rhythm, replayed from a seeded random position
of the prompt. So all models play the same kind of rhythm and differ in the notes they
choose. ``model_durations=True`` lets a model that predicts durations (the tone-deaf LSTM)
override them; off by default because its duration head is a point estimate (the mean
log-duration), and feeding those back makes its context unlike any song it was trained on.
"""

from __future__ import annotations

import numpy as np

from midiml.generate.base import Generator
from midiml.represent.windows import DELTA, DURATION, PITCH

MAX_EVENTS = 20_000  # a safety cap for "continue for N seconds" on prompts with tiny gaps


def sample_pitches(
    probs: np.ndarray,
    temperature: float = 1.0,
    top_k: int = 0,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Draw one pitch per row. temperature 0 = argmax; top_k > 0 keeps the k likeliest."""
    probs = np.asarray(probs, dtype=np.float64)
    if temperature <= 0:
        return probs.argmax(axis=1)
    rng = rng if rng is not None else np.random.default_rng(0)
    logp = np.log(np.clip(probs, 1e-300, None)) / float(temperature)
    if top_k and 0 < top_k < probs.shape[1]:
        kth = np.partition(logp, -top_k, axis=1)[:, -top_k][:, None]
        logp = np.where(logp >= kth, logp, -np.inf)
    logp -= logp.max(axis=1, keepdims=True)
    p = np.exp(logp)
    p /= p.sum(axis=1, keepdims=True)
    u = rng.random((p.shape[0], 1))
    return np.minimum((p.cumsum(axis=1) < u).sum(axis=1), p.shape[1] - 1)


def continue_events(
    gen: Generator,
    prompts: list[np.ndarray],
    n_new: int,
    temperature: float = 1.0,
    top_k: int = 0,
    seed: int = 0,
    model_durations: bool = False,
) -> list[np.ndarray]:
    """Continue each (N_i, 4) prompt by ``n_new`` events; prompts need >= ``gen.n_in`` events."""
    rng = np.random.default_rng(seed)
    for p in prompts:
        if len(p) < gen.n_in:
            raise ValueError(f"a prompt needs at least {gen.n_in} notes, got {len(p)}")
    ctx = np.stack([np.asarray(p[-gen.n_in :], np.float32) for p in prompts])
    offsets = [int(rng.integers(len(p))) for p in prompts]
    out = np.zeros((len(prompts), n_new, 4), np.float32)
    for t in range(n_new):
        pitch = sample_pitches(gen.next_pitch_proba(ctx), temperature, top_k, rng)
        dur = gen.next_duration(ctx) if model_durations else None
        for b, p in enumerate(prompts):
            out[b, t] = p[(offsets[b] + t) % len(p)]
        out[:, t, PITCH] = pitch
        if dur is not None:
            out[:, t, DURATION] = dur
        ctx = np.concatenate([ctx[:, 1:], out[:, t : t + 1]], axis=1)
    return list(out)


def continue_seconds(
    gen: Generator,
    prompt: np.ndarray,
    seconds: float,
    temperature: float = 1.0,
    top_k: int = 0,
    seed: int = 0,
    chunk: int = 64,
    model_durations: bool = False,
) -> np.ndarray:
    """Continue one prompt until the new events span ``seconds`` (onset of the last new note)."""
    rng = np.random.default_rng(seed)
    events = np.asarray(prompt, np.float32)
    new: list[np.ndarray] = []
    elapsed, total = 0.0, 0
    while elapsed < seconds and total < MAX_EVENTS:
        step_seed = int(rng.integers(2**31))
        block = continue_events(
            gen,
            [np.concatenate([events, *new])],
            chunk,
            temperature,
            top_k,
            step_seed,
            model_durations,
        )[0]
        if block[:, DELTA].sum() <= 0 and elapsed == 0 and total > 4 * chunk:
            break  # a rhythm with no time between notes never reaches the target
        new.append(block)
        elapsed += float(block[:, DELTA].sum())
        total += len(block)
    cont = np.concatenate(new) if new else np.zeros((0, 4), np.float32)
    onset = np.cumsum(cont[:, DELTA])
    keep = int(np.searchsorted(onset, seconds, side="right"))
    return cont[: max(keep, 1)]
