"""Random-forest baseline (the seed's "don't do tree based music"): window -> next pitch.

Features of a window: its last ``context`` pitches, the intervals between them, and their
log delta-onsets and log durations. Leaf frequencies give a distribution over the pitches
seen in training; it is mixed with the training unigram (weight ``unigram_mix``) so a pitch
the forest never predicts keeps a finite cost in bits.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
from sklearn.ensemble import RandomForestClassifier

from midiml.generate.base import N_PITCHES, Generator, smooth
from midiml.io import pickle_ready
from midiml.represent.windows import DELTA, DURATION, PITCH, EventData, spaced


def window_features(windows: np.ndarray, context: int) -> np.ndarray:
    w = np.asarray(windows, dtype=np.float64)[:, -context:]
    pitch = w[..., PITCH]
    interval = np.diff(pitch, axis=1)
    return np.concatenate(
        [pitch, interval, np.log1p(w[..., DELTA] * 10.0), np.log1p(w[..., DURATION] * 10.0)], axis=1
    )


class ForestGenerator(Generator):
    def __init__(
        self,
        context: int = 8,
        n_estimators: int = 60,
        max_depth: int | None = 18,
        min_samples_leaf: int = 3,
        unigram_mix: float = 0.05,
        max_train_windows: int | None = None,
        seed: int = 0,
        n_jobs: int = 1,
    ) -> None:
        self.context = int(context)
        self.n_in = self.context
        self.unigram_mix = float(unigram_mix)
        self.max_train_windows = max_train_windows
        self.unigram = np.full(N_PITCHES, 1.0 / N_PITCHES)
        self.model = RandomForestClassifier(
            n_estimators=n_estimators,
            max_depth=max_depth,
            min_samples_leaf=min_samples_leaf,
            random_state=seed,
            n_jobs=n_jobs,
        )

    def fit(self, windows: np.ndarray, next_pitch: np.ndarray) -> ForestGenerator:
        y = np.asarray(next_pitch).astype(np.int64)
        self.model.fit(window_features(windows, self.context), y)
        self.unigram = np.bincount(y, minlength=N_PITCHES) + 1.0
        self.unigram = self.unigram / self.unigram.sum()
        return self

    def fit_data(self, data: EventData) -> ForestGenerator:
        """Fit on an evenly spaced subsample of the training windows (CPU time)."""
        starts = data.starts["train"]
        starts = starts[spaced(len(starts), self.max_train_windows)]
        x, y = data.windows("train", starts)
        return self.fit(x, y[:, 0, PITCH])

    def next_pitch_proba(self, windows: np.ndarray) -> np.ndarray:
        proba = self.model.predict_proba(window_features(windows, self.context))
        full = np.zeros((proba.shape[0], N_PITCHES))
        full[:, self.model.classes_.astype(np.int64)] = proba
        mixed = (1.0 - self.unigram_mix) * full + self.unigram_mix * self.unigram
        return smooth(mixed)

    def save(self, model_dir: Path) -> None:
        with open(Path(model_dir) / "forest.pkl", "wb") as fh:
            pickle.dump(pickle_ready(self), fh, protocol=pickle.HIGHEST_PROTOCOL)

    @classmethod
    def load_saved(cls, model_dir: Path) -> ForestGenerator:
        with open(Path(model_dir) / "forest.pkl", "rb") as fh:
            return pickle.load(fh)
