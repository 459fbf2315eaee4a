"""Piano roll: a sparse pitch × time matrix of one song, and fixed-length crops of it.

The seed's CNN classified piano-roll pictures; a sparse matrix keeps a long Classical piece
(thousands of sixteenth-note steps) cheap, and crops give a CNN same-sized inputs and many
training examples per song. Time is quantised in beats (tempo-free, so a slow and a fast
rendition of one piece look alike) or in seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse


@dataclass(frozen=True)
class RollSpec:
    """How notes become a roll: step size and unit, pitch rows kept, drums, velocity."""

    step: float = 0.25  # one column = this many beats (or seconds)
    unit: str = "beats"  # "beats" | "seconds"
    pitch_low: int = 0  # first MIDI pitch kept (row 0)
    pitch_high: int = 127  # last MIDI pitch kept (inclusive)
    include_drums: bool = False  # drum "pitches" are instruments, not pitches
    velocity: bool = False  # cell value: velocity/127 instead of 1
    max_steps: int | None = None  # cap on columns (very long files)

    @property
    def n_pitches(self) -> int:
        return self.pitch_high - self.pitch_low + 1

    @classmethod
    def from_params(cls, cfg: object) -> RollSpec:
        get = cfg.get if hasattr(cfg, "get") else lambda k, d=None: getattr(cfg, k, d)
        return cls(
            step=float(get("step", 0.25)),
            unit=str(get("unit", "beats")),
            pitch_low=int(get("pitch_low", 0)),
            pitch_high=int(get("pitch_high", 127)),
            include_drums=bool(get("include_drums", False)),
            velocity=bool(get("velocity", False)),
            max_steps=get("max_steps", None),
        )


def piano_roll(notes: pd.DataFrame, spec: RollSpec | None = None) -> sparse.csr_matrix:
    """Return a (n_pitches × T) sparse roll; a note covers every step it sounds in.

    ``notes`` has the note-event columns (pitch, velocity, onset_/duration_ beats or s).
    A note shorter than a step still marks its onset step; overlapping notes on one pitch
    keep the maximum value. An empty selection gives a roll with one empty column.
    """
    spec = spec or RollSpec()
    if spec.unit not in ("beats", "seconds"):
        raise ValueError(f"unit must be 'beats' or 'seconds', not {spec.unit!r}")
    if spec.step <= 0:
        raise ValueError("step must be positive")
    sfx = "beats" if spec.unit == "beats" else "s"
    sel = notes
    if not spec.include_drums and "is_drum" in sel.columns:
        sel = sel[~sel["is_drum"].astype(bool)]
    pitch = sel["pitch"].to_numpy(dtype=np.int64)
    keep = (pitch >= spec.pitch_low) & (pitch <= spec.pitch_high)
    sel, pitch = sel[keep], pitch[keep]
    if len(sel) == 0:
        return sparse.csr_matrix((spec.n_pitches, 1), dtype=np.float32)
    onset = sel[f"onset_{sfx}"].to_numpy(dtype=np.float64)
    dur = np.maximum(sel[f"duration_{sfx}"].to_numpy(dtype=np.float64), 0.0)
    start = np.floor(onset / spec.step + 1e-9).astype(np.int64)
    stop = np.maximum(np.ceil((onset + dur) / spec.step - 1e-9).astype(np.int64), start + 1)
    n_steps = int(stop.max())
    if spec.max_steps is not None:
        n_steps = min(n_steps, int(spec.max_steps))
        stop = np.minimum(stop, n_steps)
        ok = start < n_steps
        start, stop, pitch, sel = start[ok], stop[ok], pitch[ok], sel[ok]
    lengths = stop - start
    rows = np.repeat(pitch - spec.pitch_low, lengths)
    cols = np.repeat(start, lengths) + _ramp(lengths)
    if spec.velocity:
        vals = np.repeat(sel["velocity"].to_numpy(dtype=np.float32) / 127.0, lengths)
    else:
        vals = np.ones(len(rows), dtype=np.float32)
    roll = sparse.coo_matrix((vals, (rows, cols)), shape=(spec.n_pitches, max(n_steps, 1)))
    # duplicates (overlapping notes) are summed by tocsr; cap to keep a 0..1 picture
    out = roll.tocsr()
    out.data = np.minimum(out.data, 1.0).astype(np.float32)
    return out


def _ramp(lengths: np.ndarray) -> np.ndarray:
    """0..len-1 for each length, concatenated (vectorised ``np.arange`` per note)."""
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    offsets = np.repeat(np.cumsum(lengths) - lengths, lengths)
    return np.arange(total, dtype=np.int64) - offsets


def crop_starts(
    n_steps: int, length: int, n: int, rng: np.random.Generator | None = None
) -> np.ndarray:
    """Start columns of ``n`` crops of ``length`` steps.

    With ``rng`` the starts are random (training); without, they are evenly spaced over the
    song (evaluation), so the song-level vote sees its whole length. A song shorter than a
    crop yields one start at 0 (the crop is zero-padded).
    """
    last = n_steps - length
    if last <= 0 or n <= 0:
        return np.zeros(1 if n > 0 else 0, dtype=np.int64)
    if rng is not None:
        return np.sort(rng.integers(0, last + 1, size=n)).astype(np.int64)
    k = min(n, last + 1)
    return np.unique(np.linspace(0, last, k).round().astype(np.int64))


def crops(roll: sparse.csr_matrix, length: int, starts: np.ndarray) -> np.ndarray:
    """Dense (n_crops × n_pitches × length) float32 crops, zero-padded past the song's end."""
    n_pitches, n_steps = roll.shape
    out = np.zeros((len(starts), n_pitches, length), dtype=np.float32)
    for i, s in enumerate(starts):
        e = min(int(s) + length, n_steps)
        if e > s:
            out[i, :, : e - int(s)] = roll[:, int(s) : e].toarray()
    return out


def song_rolls(
    notes: pd.DataFrame, spec: RollSpec | None = None, file_ids: list[str] | None = None
) -> dict[str, sparse.csr_matrix]:
    """Rolls for every file in a note table (all files, or those in ``file_ids``)."""
    spec = spec or RollSpec()
    wanted = None if file_ids is None else set(file_ids)
    out: dict[str, sparse.csr_matrix] = {}
    for fid, g in notes.groupby("file_id", sort=True, observed=True):
        if wanted is None or fid in wanted:
            out[str(fid)] = piano_roll(g, spec)
    if wanted is not None:  # files without (kept) notes still get an empty roll
        for fid in wanted - out.keys():
            out[fid] = sparse.csr_matrix((spec.n_pitches, 1), dtype=np.float32)
    return out
