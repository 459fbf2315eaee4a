"""Windows of onset/frame piano rolls for the VAE: a context half and a continuation half.

Each song becomes a sparse (onset, frame) roll once; a window is ``window`` steps cut from
it, its first half the context (what the listener heard) and its second the continuation
(what the model must guess). Only windows with at least ``min_notes`` onsets in each half
count, so the model never learns to continue silence with silence. Training uses one seeded
random subsample of the qualifying windows per fit (``windows_per_epoch``; it keeps a CPU
epoch short) and transposes each by a random interval; validation and
test use fixed, evenly spaced windows of the held-out songs (song-level splits).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import lightning as L
import numpy as np
import pandas as pd
import torch
from scipy import sparse
from torch.utils.data import DataLoader, Dataset

from midiml.represent.onset_frame import Grid, onset_frame_rolls, transpose_rolls


@dataclass
class SongRolls:
    """The sparse rolls of one split's songs and the window starts that qualify."""

    file_ids: list[str]
    onset: list[sparse.csr_matrix]
    frame: list[sparse.csr_matrix]
    starts: list[np.ndarray]  # valid window starts per song

    def window(self, song: int, start: int, length: int) -> np.ndarray:
        """Dense (2, n_pitches, length) float32 window, zero-padded past the end."""
        out = []
        for roll in (self.onset[song], self.frame[song]):
            part = roll[:, start : start + length].toarray()
            if part.shape[1] < length:
                part = np.pad(part, ((0, 0), (0, length - part.shape[1])))
            out.append(part)
        return np.stack(out).astype(np.float32)

    def pairs(self) -> np.ndarray:
        """(n, 2) [song, start] of every qualifying window."""
        parts = [np.stack([np.full(len(s), i), s], 1) for i, s in enumerate(self.starts) if len(s)]
        return np.concatenate(parts).astype(np.int64) if parts else np.zeros((0, 2), np.int64)


def valid_starts(onset: sparse.csr_matrix, window: int, hop: int, min_notes: int) -> np.ndarray:
    """Starts (every ``hop`` steps) whose context and continuation halves both hold notes."""
    per_step = np.asarray(onset.sum(axis=0)).ravel()
    cum = np.concatenate([[0.0], np.cumsum(per_step)])
    n = len(per_step)
    half = window // 2
    starts = np.arange(0, max(n - window, 0) + 1, hop)
    first = cum[np.minimum(starts + half, n)] - cum[starts]
    second = cum[np.minimum(starts + window, n)] - cum[np.minimum(starts + half, n)]
    return starts[(first >= min_notes) & (second >= min_notes)]


def build_song_rolls(
    notes: pd.DataFrame, file_ids: list[str], grid: Grid, window: int, hop: int, min_notes: int
) -> SongRolls:
    wanted = set(file_ids)
    sel = notes[notes["file_id"].isin(wanted)]
    out = SongRolls([], [], [], [])
    for fid, g in sel.groupby("file_id", sort=True, observed=True):
        on, fr = onset_frame_rolls(g, grid)
        out.file_ids.append(str(fid))
        out.onset.append(on)
        out.frame.append(fr)
        out.starts.append(valid_starts(on, window, hop, min_notes))
    return out


class _Windows(Dataset):
    def __init__(
        self,
        rolls: SongRolls,
        pairs: np.ndarray,
        window: int,
        transpose: int = 0,
        seed: int = 0,
    ) -> None:
        self.rolls, self.pairs, self.window = rolls, pairs, window
        rng = np.random.default_rng(seed)
        self.shifts = (
            rng.integers(-transpose, transpose + 1, size=len(pairs))
            if transpose
            else np.zeros(len(pairs), np.int64)
        )

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> torch.Tensor:
        song, start = self.pairs[i]
        x = self.rolls.window(int(song), int(start), self.window)
        return torch.from_numpy(transpose_rolls(x, int(self.shifts[i])))


def spaced_pairs(rolls: SongRolls, per_song: int) -> np.ndarray:
    """Up to ``per_song`` evenly spaced qualifying windows of every song (evaluation)."""
    parts = []
    for i, s in enumerate(rolls.starts):
        if len(s):
            idx = np.unique(np.linspace(0, len(s) - 1, min(per_song, len(s))).round().astype(int))
            parts.append(np.stack([np.full(len(idx), i), s[idx]], 1))
    return np.concatenate(parts).astype(np.int64) if parts else np.zeros((0, 2), np.int64)


class RollWindowDataModule(L.LightningDataModule):
    """Onset/frame roll windows from the notes table with song-level splits."""

    def __init__(
        self,
        notes_path: str = "data/interim/notes.parquet",
        splits_path: str = "data/interim/splits.parquet",
        step: float = 0.0625,
        pitch_low: int = 21,
        pitch_high: int = 108,
        window: int = 512,
        hop: int = 32,
        min_notes: int = 8,
        windows_per_epoch: int = 3000,
        eval_per_song: int = 4,
        transpose: int = 5,
        batch_size: int = 32,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.notes_path, self.splits_path = notes_path, splits_path
        self.grid = Grid(step, pitch_low, pitch_high)
        self.window, self.hop, self.min_notes = window, hop, min_notes
        self.windows_per_epoch, self.eval_per_song = windows_per_epoch, eval_per_song
        self.transpose, self.batch_size, self.seed = transpose, batch_size, seed
        self.rolls: dict[str, SongRolls] = {}
        self._epoch = 0

    def setup(self, stage: str | None = None) -> None:
        if self.rolls:
            return
        notes = pd.read_parquet(self.notes_path)
        splits = pd.read_parquet(Path(self.splits_path))
        for name in ("train", "val", "test"):
            ids = splits.loc[splits["split"] == name, "file_id"].astype(str).tolist()
            self.rolls[name] = build_song_rolls(
                notes, ids, self.grid, self.window, self.hop, self.min_notes
            )

    def eval_dataset(self, split: str) -> _Windows:
        rolls = self.rolls[split]
        return _Windows(rolls, spaced_pairs(rolls, self.eval_per_song), self.window)

    def train_dataloader(self) -> DataLoader:
        rolls = self.rolls["train"]
        pairs = rolls.pairs()
        rng = np.random.default_rng(self.seed + self._epoch)
        self._epoch += 1
        take = rng.choice(len(pairs), min(self.windows_per_epoch, len(pairs)), replace=False)
        ds = _Windows(rolls, pairs[np.sort(take)], self.window, self.transpose, self.seed)
        return DataLoader(ds, batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.eval_dataset("val"), batch_size=self.batch_size)

    def test_dataloader(self) -> DataLoader:
        return DataLoader(self.eval_dataset("test"), batch_size=self.batch_size)
