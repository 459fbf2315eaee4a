"""Onset + frame piano rolls on a fixed seconds grid, and decoding them back to notes.

A frame roll alone cannot tell one long note from two repeated ones, and a model trained
on it alone learns that holding a pitch is cheap; a second channel that marks only the
step where a note starts keeps the rhythm visible. Rows are a trimmed pitch range (the
88 piano keys by default: almost every note of the corpus, and 30 % fewer rows than 128).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import ndimage, sparse

from midiml.represent.pianoroll import RollSpec, piano_roll

NOTE_COLUMNS = ("pitch", "velocity", "onset_s", "duration_s")


@dataclass(frozen=True)
class Grid:
    """The roll's time step (seconds) and its pitch rows (inclusive range)."""

    step: float = 0.0625
    pitch_low: int = 21
    pitch_high: int = 108

    @property
    def n_pitches(self) -> int:
        return self.pitch_high - self.pitch_low + 1

    def spec(self) -> RollSpec:
        return RollSpec(
            step=self.step, unit="seconds", pitch_low=self.pitch_low, pitch_high=self.pitch_high
        )


def onset_frame_rolls(
    notes: pd.DataFrame, grid: Grid, n_steps: int | None = None
) -> tuple[sparse.csr_matrix, sparse.csr_matrix]:
    """(onset, frame) sparse rolls (n_pitches × T) of one song's non-drum notes.

    The onset roll is the frame roll of the same notes with zero duration: exactly one cell
    per note, at the step its onset falls in. ``n_steps`` pads or cuts both to that length.
    """
    frame = piano_roll(notes, grid.spec())
    zero = notes.assign(duration_s=0.0)
    onset = piano_roll(zero, grid.spec())
    t = n_steps if n_steps is not None else max(frame.shape[1], onset.shape[1])
    return _fit(onset, t), _fit(frame, t)


def _fit(roll: sparse.csr_matrix, n_steps: int) -> sparse.csr_matrix:
    roll = roll.tocsc()[:, :n_steps]
    if roll.shape[1] < n_steps:
        pad = sparse.csc_matrix((roll.shape[0], n_steps - roll.shape[1]), dtype=np.float32)
        roll = sparse.hstack([roll, pad], format="csc")
    return roll.tocsr()


def rolls_to_notes(
    onset: np.ndarray,
    frame: np.ndarray,
    grid: Grid,
    onset_threshold: float = 0.5,
    frame_threshold: float = 0.5,
    velocity: int = 80,
    time_offset: float = 0.0,
    onsets_from_frames: bool = False,
    peak_pick: bool = True,
) -> pd.DataFrame:
    """Decode (probability) rolls (n_pitches × T) into a note table.

    A note starts where the onset channel crosses ``onset_threshold`` at a local peak
    (``peak_pick``: a model unsure by a step or a semitone spreads one onset over
    neighbouring cells, which would otherwise become a burst of notes) and lasts while the
    frame channel stays above ``frame_threshold`` (at least one step), ending early at the
    next onset on the same pitch. ``onsets_from_frames`` decodes a frame-only model (the
    seed study's): a note starts where the frame channel switches on.
    """
    frame_on = np.asarray(frame) >= frame_threshold
    if onsets_from_frames:
        prev = np.zeros_like(frame_on)
        prev[:, 1:] = frame_on[:, :-1]
        on = frame_on & ~prev
    else:
        on = np.asarray(onset) >= onset_threshold
        if peak_pick:
            on &= onset_peaks(onset)
    rows: list[tuple[int, float, float]] = []
    n_steps = on.shape[1]
    for r, t in zip(*np.nonzero(on), strict=True):
        end = t + 1
        while end < n_steps and frame_on[r, end] and not on[r, end]:
            end += 1
        rows.append((r + grid.pitch_low, t * grid.step, (end - t) * grid.step))
    out = pd.DataFrame(rows, columns=["pitch", "onset_s", "duration_s"])
    out["onset_s"] = out["onset_s"] + time_offset
    out.insert(1, "velocity", velocity)
    return note_table(out)


def onset_peaks(onset: np.ndarray, time_radius: int = 2, pitch_radius: int = 1) -> np.ndarray:
    """Cells that are the maximum of their (2·pitch_radius+1) × (2·time_radius+1) neighbourhood.

    Ties all count, so a clean 0/1 roll keeps every onset (the round trip stays exact).
    """
    x = np.asarray(onset, np.float32)
    size = (2 * pitch_radius + 1, 2 * time_radius + 1)
    return (x >= ndimage.maximum_filter(x, size=size, mode="constant")) & (x > 0)


def note_cells(on: np.ndarray, frame_on: np.ndarray) -> np.ndarray:
    """The cells the decoded notes cover (same rule as :func:`rolls_to_notes`), vectorised.

    ``on`` / ``frame_on``: boolean (..., P, T). A cell is covered if a note starts there,
    or it is an active frame cell right after a covered one with no new onset.
    """
    on, frame_on = np.asarray(on, bool), np.asarray(frame_on, bool)
    out = np.zeros_like(on)
    out[..., 0] = on[..., 0]
    for t in range(1, on.shape[-1]):
        out[..., t] = on[..., t] | (frame_on[..., t] & out[..., t - 1])
    return out


def note_table(df: pd.DataFrame) -> pd.DataFrame:
    """Give decoded notes the columns of the project's note table (beats at 120 qpm)."""
    out = pd.DataFrame(
        {
            "track": np.zeros(len(df), np.int16),
            "program": np.zeros(len(df), np.int16),
            "is_drum": np.zeros(len(df), bool),
            "pitch": df["pitch"].to_numpy(np.int16),
            "velocity": df["velocity"].to_numpy(np.int16),
            "onset_s": df["onset_s"].to_numpy(np.float64),
            "duration_s": df["duration_s"].to_numpy(np.float64),
        }
    )
    out["onset_beats"] = out["onset_s"] * 2.0
    out["duration_beats"] = out["duration_s"] * 2.0
    return out.sort_values(["onset_s", "pitch"], kind="stable").reset_index(drop=True)


def transpose_rolls(x: np.ndarray, semitones: int) -> np.ndarray:
    """Shift (..., n_pitches, T) rolls by ``semitones`` along pitch; notes pushed out are lost."""
    if semitones == 0:
        return x
    out = np.zeros_like(x)
    if semitones > 0:
        out[..., semitones:, :] = x[..., :-semitones, :]
    else:
        out[..., :semitones, :] = x[..., -semitones:, :]
    return out
