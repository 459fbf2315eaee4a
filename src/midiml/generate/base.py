"""The one interface every next-note generator offers, and saving/loading it from ``models/``.

A generator sees the last ``n_in`` events ``[pitch, velocity, delta_onset, duration]`` and
gives a distribution over the 128 MIDI pitches of the next event. That is all evaluation
(bits per note, top-k) and sampling need, so Markov chains, forests and networks compare
on one footing. A model may also predict the next duration (the tone-deaf LSTM does).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

N_PITCHES = 128
META = "meta.json"


class Generator:
    """Base class: ``next_pitch_proba(windows) -> (B, 128)`` rows summing to 1."""

    kind: str = "base"
    n_in: int = 1

    def next_pitch_proba(self, windows: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def next_duration(self, windows: np.ndarray) -> np.ndarray | None:
        """Predicted duration (s) of the next event, or None to take it from the prompt."""
        return None

    def save(self, model_dir: Path) -> None:
        raise NotImplementedError


def smooth(probs: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Mix in a uniform floor so no pitch has probability 0 (bits stay finite), renormalised."""
    probs = np.asarray(probs, dtype=np.float64)
    probs = probs / np.clip(probs.sum(axis=1, keepdims=True), 1e-300, None)
    return (1.0 - eps) * probs + eps / probs.shape[1]


def write_meta(model_dir: Path, kind: str, **extra: Any) -> None:
    (Path(model_dir) / META).write_text(
        json.dumps({"kind": kind, **extra}, indent=2, sort_keys=True) + "\n"
    )


def read_meta(model_dir: str | Path) -> dict[str, Any]:
    path = Path(model_dir) / META
    if not path.exists():
        raise FileNotFoundError(
            f"{model_dir}: no trained model here (missing {META}); run `dvc repro` to train it"
        )
    return json.loads(path.read_text())


def load_generator(model_dir: str | Path) -> Generator:
    """Load any generator saved by a training stage (``models/<name>/``)."""
    meta = read_meta(model_dir)
    kind = meta["kind"]
    if kind == "markov":
        from midiml.generate.markov import MarkovGenerator

        return MarkovGenerator.load(Path(model_dir))
    if kind == "forest":
        from midiml.generate.forest import ForestGenerator

        return ForestGenerator.load(Path(model_dir))
    from midiml.generate.neural import TorchGenerator

    return TorchGenerator.load(Path(model_dir))
