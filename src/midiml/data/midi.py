"""Parse one MIDI file into note events (one row per note) and a one-row file summary.

symusic (C++) reads the notes, tempo map and time signatures fast; mido reads the raw
message stream, which gives the seed study's "messages" and "tracks" counts and a
second, strict opinion on whether the file is readable at all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mido
import numpy as np
import pandas as pd
import symusic

NOTE_COLUMNS = {
    "file_id": "string",
    "track": "int16",
    "program": "int16",
    "is_drum": "bool",
    "pitch": "int16",
    "velocity": "int16",
    "onset_s": "float64",
    "duration_s": "float64",
    "onset_beats": "float64",
    "duration_beats": "float64",
}


class MidiParseError(ValueError):
    """The file is not a MIDI file we can read; the message names the file and the reason."""


@dataclass
class ParsedMidi:
    notes: pd.DataFrame
    info: dict[str, Any] = field(default_factory=dict)


def empty_notes() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in NOTE_COLUMNS.items()})


def _tempo_stats(score: symusic.Score, end_tick: int) -> dict[str, float]:
    """Time-weighted mean/std of the tempo (quarter notes per minute) and its change count."""
    tempos = sorted(((t.time, t.qpm) for t in score.tempos), key=lambda x: x[0])
    if not tempos:
        return {"qpm_mean": 120.0, "qpm_std": 0.0, "n_tempo_changes": 0}
    times = np.array([t for t, _ in tempos] + [max(end_tick, tempos[-1][0])], dtype=float)
    qpm = np.array([q for _, q in tempos], dtype=float)
    weights = np.diff(times)
    if weights.sum() <= 0:
        weights = np.ones_like(qpm)
    mean = float(np.average(qpm, weights=weights))
    std = float(np.sqrt(np.average((qpm - mean) ** 2, weights=weights)))
    changes = int(np.count_nonzero(np.abs(np.diff(qpm)) > 1e-6))
    return {"qpm_mean": mean, "qpm_std": std, "n_tempo_changes": changes}


def parse_midi(path: str | Path, file_id: str | None = None) -> ParsedMidi:
    """Read ``path``; raise MidiParseError (naming the file) when it cannot be read."""
    path = Path(path)
    file_id = file_id or path.name
    try:
        raw = mido.MidiFile(path, clip=True)
        n_messages = sum(len(t) for t in raw.tracks)
        n_tracks = len(raw.tracks)
        score = symusic.Score(str(path))
        seconds = score.to("second")
    except Exception as exc:  # mido raises OSError/EOFError/ValueError/KeyError...
        raise MidiParseError(f"{path}: unreadable MIDI ({type(exc).__name__}: {exc})") from exc

    tpq = max(int(score.ticks_per_quarter), 1)
    frames = []
    for i, (tt, ts) in enumerate(zip(score.tracks, seconds.tracks, strict=True)):
        if tt.note_num() == 0:
            continue
        nt, ns = tt.notes.numpy(), ts.notes.numpy()
        n = len(nt["time"])
        frames.append(
            pd.DataFrame(
                {
                    "file_id": file_id,
                    "track": np.full(n, i, dtype=np.int16),
                    "program": np.full(n, tt.program, dtype=np.int16),
                    "is_drum": np.full(n, bool(tt.is_drum)),
                    "pitch": nt["pitch"].astype(np.int16),
                    "velocity": nt["velocity"].astype(np.int16),
                    "onset_s": ns["time"].astype(np.float64),
                    "duration_s": ns["duration"].astype(np.float64),
                    "onset_beats": nt["time"].astype(np.float64) / tpq,
                    "duration_beats": nt["duration"].astype(np.float64) / tpq,
                }
            )
        )
    notes = pd.concat(frames, ignore_index=True) if frames else empty_notes()
    notes = notes.astype(NOTE_COLUMNS)
    if len(notes):
        notes = notes.sort_values(["onset_s", "pitch", "track"], kind="stable", ignore_index=True)

    ts_first = score.time_signatures[0] if len(score.time_signatures) else None
    info = {
        "length_s": float(seconds.end()) if len(notes) or score.end() else 0.0,
        "n_tracks": n_tracks,
        "n_messages": n_messages,
        "n_notes": len(notes),
        "ticks_per_quarter": tpq,
        "ts_numerator": int(ts_first.numerator) if ts_first else 4,
        "ts_denominator": int(ts_first.denominator) if ts_first else 4,
        "n_timesig_changes": max(len(score.time_signatures) - 1, 0),
        **_tempo_stats(score, int(score.end())),
    }
    return ParsedMidi(notes=notes, info=info)


def read_user_file(path: str | Path) -> ParsedMidi:
    """A MIDI file handed to the CLI: a missing or unreadable file raises with its path."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    return parse_midi(path, str(path))
