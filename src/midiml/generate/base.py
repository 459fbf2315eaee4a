"""The one interface every next-note generator offers, and saving/loading it from ``models/``.

A generator sees the last ``n_in`` events ``[pitch, velocity, delta_onset, duration]`` and
gives a distribution over the 128 MIDI pitches of the next event. That is all evaluation
(bits per note, top-k) and sampling need, so Markov chains, forests and networks compare
on one footing. A model may also predict the next duration (the tone-deaf LSTM does).

A saved generator's folder holds ``meta.json`` with the config it was built from
(``_target_`` + keyword arguments), so loading needs no table of model names: the class named
by ``_target_`` loads its own files (``load_saved``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from hydra.utils import get_class

N_PITCHES = 128
META = "meta.json"


class Generator:
    """Base class: ``next_pitch_proba(windows) -> (B, 128)`` rows summing to 1."""

    n_in: int = 1

    def fit_data(self, data: Any) -> Generator:
        """Fit on the training split of an ``EventData`` (models trained without Lightning)."""
        raise NotImplementedError

    def next_pitch_proba(self, windows: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def next_duration(self, windows: np.ndarray) -> np.ndarray | None:
        """Predicted duration (s) of the next event, or None to take it from the prompt."""
        return None

    def save(self, model_dir: Path) -> None:
        """Write the model's own files into ``model_dir`` (``meta.json`` is written by training)."""
        raise NotImplementedError

    @classmethod
    def load_saved(cls, model_dir: Path) -> Generator:
        raise NotImplementedError


def smooth(probs: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Mix in a uniform floor so no pitch has probability 0 (bits stay finite), renormalised."""
    probs = np.asarray(probs, dtype=np.float64)
    probs = probs / np.clip(probs.sum(axis=1, keepdims=True), 1e-300, None)
    return (1.0 - eps) * probs + eps / probs.shape[1]


def write_meta(model_dir: str | Path, name: str, config: dict[str, Any], **extra: Any) -> None:
    """Record what was built (``config`` has the ``_target_``) beside the model's files."""
    meta = {"name": name, "config": config, **extra}
    (Path(model_dir) / META).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")


def read_meta(model_dir: str | Path) -> dict[str, Any]:
    path = Path(model_dir) / META
    if not path.exists():
        raise FileNotFoundError(
            f"{model_dir}: no trained model here (missing {META}); run `dvc repro` to train it"
        )
    return json.loads(path.read_text())


def load_generator(model_dir: str | Path) -> Generator:
    """Load any generator saved by a training stage (``models/generators/<name>/``)."""
    meta = read_meta(model_dir)
    return get_class(meta["config"]["_target_"]).load_saved(Path(model_dir))
