"""What every generator does on the held-out test songs: the same windows, the same prompts.

- predictions: every test window (n_in events -> next pitch) gets a distribution over pitches;
- continuations: one prompt of ``prompt_len`` events from the middle of each of ``n_prompts``
  test songs long enough for prompt + ``n_new`` events (evenly chosen over the sorted song
  ids), continued by ``n_new`` sampled events; the songs' real continuations are the reference.

``midiml.evaluate.generators`` turns these into metrics.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from midiml.generate.base import Generator
from midiml.generate.sampling import continue_events
from midiml.represent.windows import PITCH, EventData, spaced


def evaluation_windows(data: EventData, split: str = "test") -> tuple[np.ndarray, np.ndarray]:
    """(windows (W, n_in, 4), next pitch (W,)) of a split: every model sees the same ones."""
    x, y = data.windows(split)
    return x, y[:, 0, PITCH].astype(np.int64)


def test_predictions(gen: Generator, data: EventData) -> tuple[np.ndarray, np.ndarray]:
    """(pitch probabilities (W, 128), true next pitches (W,)) on every test window."""
    x, y = evaluation_windows(data)
    return gen.next_pitch_proba(x), y


def prompt_segments(
    data: EventData, n_prompts: int, prompt_len: int, n_new: int
) -> tuple[list[np.ndarray], list[np.ndarray], list[str]]:
    """(prompts, real continuations, file ids) from the middle of evenly chosen test songs."""
    songs = [s for s in data.songs("test") if len(data.song(s)) >= prompt_len + n_new]
    songs = [songs[i] for i in spaced(len(songs), n_prompts)]
    prompts, real, ids = [], [], []
    for s in songs:
        ev = data.song(s)
        start = (len(ev) - prompt_len - n_new) // 2
        prompts.append(ev[start : start + prompt_len])
        real.append(ev[start + prompt_len : start + prompt_len + n_new])
        ids.append(str(data.file_ids[s]))
    return prompts, real, ids


def sample_continuations(
    gen: Generator, data: EventData, sampling: Any, temperature: float | None = None
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(prompts, sampled continuations) of the test prompts with ``sampling``'s settings."""
    prompts, _, _ = prompt_segments(
        data, int(sampling.n_prompts), int(sampling.prompt_len), int(sampling.n_new)
    )
    temp = float(sampling.temperature) if temperature is None else float(temperature)
    samples = continue_events(
        gen,
        prompts,
        int(sampling.n_new),
        temp,
        int(sampling.top_k),
        int(sampling.seed),
        bool(sampling.get("model_durations", False)),
    )
    return prompts, samples


def test_songs(data: EventData) -> list[np.ndarray]:
    """Every test song's events (the reference distribution of the sample statistics)."""
    return [data.song(s) for s in data.songs("test")]
