"""Parse one MIDI file into note events (one row per note) and a one-row file summary.

symusic (C++) reads the notes, tempo map and time signatures fast, and the seed study's
"tracks" and "messages" counts come from the same parse (see ``event_counts``): one parse
per file, so ingest runs at the parser's speed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
    raw = score.tempos.numpy()  # vectorised: some files carry tens of thousands of tempo events
    if not len(raw["time"]):
        return {"qpm_mean": 120.0, "qpm_std": 0.0, "n_tempo_changes": 0}
    order = np.argsort(raw["time"], kind="stable")
    ticks = raw["time"][order].astype(float)
    qpm = 60_000_000.0 / raw["mspq"][order].astype(float)
    times = np.append(ticks, max(end_tick, ticks[-1]))
    weights = np.diff(times)
    total = weights.sum()
    if total <= 0:
        weights, total = np.ones_like(qpm), float(len(qpm))
    mean = float((qpm * weights).sum() / total)
    std = float(np.sqrt(((qpm - mean) ** 2 * weights).sum() / total))
    changes = int(np.count_nonzero(np.abs(np.diff(qpm)) > 1e-6))
    return {"qpm_mean": mean, "qpm_std": std, "n_tempo_changes": changes}


def event_counts(score: symusic.Score) -> int:
    """The file's "messages", counted on the parsed score instead of a second (mido) parse.

    Two per note (on + off) + control changes + pitch bends + lyrics + tempo, time-signature,
    key-signature and marker events. Unlike mido's raw count it leaves out track names,
    program changes, sysex and end-of-track messages, so the figures are a little lower.
    """
    n = sum(
        2 * t.note_num() + len(t.controls) + len(t.pitch_bends) + len(t.lyrics)
        for t in score.tracks
    )
    meta = len(score.tempos) + len(score.time_signatures) + len(score.key_signatures)
    return n + meta + len(score.markers)


def header_track_count(data: bytes) -> int:
    """Track chunks the MIDI header announces (what mido's ``len(tracks)`` reported)."""
    return int.from_bytes(data[10:12], "big") if data[:4] == b"MThd" else 0


def tick_to_seconds(score: symusic.Score, tpq: int) -> Callable[[np.ndarray], np.ndarray]:
    """Ticks -> seconds through the tempo map, vectorised (float64; symusic's own seconds
    conversion is float32 and costs as much as the parse). Before the first tempo event,
    and in files without one, MIDI's default 120 qpm applies; of several tempo events at
    one tick the last wins."""
    raw = score.tempos.numpy()
    order = np.argsort(raw["time"], kind="stable")
    ticks = raw["time"][order].astype(np.int64)
    mspq = raw["mspq"][order].astype(np.float64)
    if not len(ticks) or ticks[0] > 0:
        ticks, mspq = np.append(0, ticks), np.append(500_000.0, mspq)
    sec_per_tick = mspq / 1e6 / tpq
    start_s = np.concatenate([[0.0], np.cumsum(np.diff(ticks) * sec_per_tick[:-1])])

    def convert(t: np.ndarray) -> np.ndarray:
        if len(ticks) == 1:  # one tempo (most files): no lookup, the same numbers
            return start_s[0] + (t - ticks[0]) * sec_per_tick[0]
        k = np.searchsorted(ticks, t, side="right") - 1
        return start_s[k] + (t - ticks[k]) * sec_per_tick[k]

    return convert


def parse_columns(
    path: str | Path, data: bytes | None = None
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read ``path`` (or its bytes ``data``) into note columns (numpy, no file_id) and a summary.

    Raises MidiParseError (naming the file) when it cannot be read. Notes are sorted by
    onset, pitch, track. No pandas here: ingest calls this once per file.
    """
    path = Path(path)
    try:
        data = path.read_bytes() if data is None else data
        score = symusic.Score.from_midi(data)
    except Exception as exc:  # symusic raises RuntimeError/ValueError...; OSError for the file
        raise MidiParseError(f"{path}: unreadable MIDI ({type(exc).__name__}: {exc})") from exc

    tpq = max(int(score.ticks_per_quarter), 1)
    to_seconds = tick_to_seconds(score, tpq)
    # all tracks' notes at once: numpy calls per file, not per track (ingest runs this per file)
    tracks = [(i, t, t.notes.numpy()) for i, t in enumerate(score.tracks) if t.note_num()]
    counts = [len(nt["time"]) for _, _, nt in tracks]

    def joined(key: str) -> np.ndarray:
        return np.concatenate([nt[key] for _, _, nt in tracks]) if tracks else np.zeros(0)

    def per_track(values: list, dtype: type) -> np.ndarray:
        return np.repeat(np.array(values, dtype=dtype), counts)

    ticks, dur = joined("time").astype(np.int64), joined("duration").astype(np.int64)
    seconds = to_seconds(np.concatenate([ticks, ticks + dur]))
    onset_s = seconds[: len(ticks)]
    cols = {
        "track": per_track([i for i, _, _ in tracks], np.int16),
        "program": per_track([t.program for _, t, _ in tracks], np.int16),
        "is_drum": per_track([bool(t.is_drum) for _, t, _ in tracks], bool),
        "pitch": joined("pitch").astype(np.int16),
        "velocity": joined("velocity").astype(np.int16),
        "onset_s": onset_s,
        "duration_s": seconds[len(ticks) :] - onset_s,
        "onset_beats": ticks.astype(np.float64) / tpq,
        "duration_beats": dur.astype(np.float64) / tpq,
    }
    n_notes = len(cols["pitch"])
    if n_notes:
        # by onset, pitch, track: seconds grow with ticks, so one integer key sorts the same
        key = (ticks * 128 + cols["pitch"]) * (len(score.tracks) + 1) + cols["track"]
        order = np.argsort(key, kind="stable")
        cols = {c: v[order] for c, v in cols.items()}

    ts_first = score.time_signatures[0] if len(score.time_signatures) else None
    info = {
        "length_s": float(to_seconds(np.array([score.end()]))[0])
        if n_notes or score.end()
        else 0.0,
        "n_tracks": header_track_count(data),
        "n_messages": event_counts(score),
        "n_notes": n_notes,
        "ticks_per_quarter": tpq,
        "ts_numerator": int(ts_first.numerator) if ts_first else 4,
        "ts_denominator": int(ts_first.denominator) if ts_first else 4,
        "n_timesig_changes": max(len(score.time_signatures) - 1, 0),
        **_tempo_stats(score, int(score.end())),
    }
    return cols, info


def notes_frame(cols: dict[str, np.ndarray], file_id: str) -> pd.DataFrame:
    """Note columns from ``parse_columns`` as the notes table's frame for one file."""
    n = len(cols["pitch"])
    df = pd.DataFrame({"file_id": np.full(n, file_id, dtype=object), **cols})
    return df.astype(NOTE_COLUMNS)


def parse_midi(path: str | Path, file_id: str | None = None) -> ParsedMidi:
    """Read ``path``; raise MidiParseError (naming the file) when it cannot be read."""
    cols, info = parse_columns(path)
    return ParsedMidi(notes=notes_frame(cols, file_id or Path(path).name), info=info)


def read_user_file(path: str | Path) -> ParsedMidi:
    """A MIDI file handed to the CLI: a missing or unreadable file raises with its path."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    return parse_midi(path, str(path))
