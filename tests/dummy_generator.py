"""A generator that exists only in the tests: it proves a new model needs one module and one
config node, nothing else (no table of names anywhere in the project)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from midiml.generate.base import N_PITCHES, Generator, smooth
from midiml.represent.windows import PITCH


class RepeatLastGenerator(Generator):
    """Predicts the previous pitch with probability ``stay``, the rest spread evenly."""

    def __init__(self, stay: float = 0.5) -> None:
        self.stay = float(stay)
        self.n_in = 1

    def fit_data(self, data) -> RepeatLastGenerator:
        return self

    def next_pitch_proba(self, windows: np.ndarray) -> np.ndarray:
        last = np.asarray(windows)[:, -1, PITCH].astype(np.int64)
        probs = np.full((len(last), N_PITCHES), (1 - self.stay) / (N_PITCHES - 1))
        probs[np.arange(len(last)), last] = self.stay
        return smooth(probs)

    def save(self, model_dir: Path) -> None:
        (Path(model_dir) / "stay.txt").write_text(f"{self.stay}\n")

    @classmethod
    def load_saved(cls, model_dir: Path) -> RepeatLastGenerator:
        return cls(float((Path(model_dir) / "stay.txt").read_text()))
