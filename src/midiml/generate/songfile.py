"""The user's MIDI file in, the same file plus one continuation track out.

The original's track chunks are copied byte for byte (every track, drums, tempo map, time
signatures, controllers: the bytes the validation scan checked), only the header's track
count grows (a type-0 file becomes type 1), and the continuation is one more track chunk in
the prompt's instrument, on a channel no other track plays. mido writes just that new track,
so a 200,000-note file costs no message objects. The prompt is the busiest non-drum track
(melody, or a piano part with chords); times convert between seconds and ticks through the
file's own tempo map, so the new notes play in the prompt's tempo and start when the prompt
ends.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from typing import Any

import mido
import numpy as np

DEFAULT_TEMPO = 500_000  # microseconds per quarter (120 qpm) when a file sets none
DRUM_CHANNEL = 9


@dataclass
class TempoMap:
    """Piecewise-constant tempo: change ticks, tempos (us/quarter), seconds at each change."""

    ticks_per_beat: int
    ticks: np.ndarray
    tempos: np.ndarray
    seconds: np.ndarray

    @classmethod
    def of_score(cls, score: Any) -> TempoMap:
        """From a symusic score in ticks (its tempo events; 120 qpm before the first)."""
        raw = score.tempos.numpy()
        order = np.argsort(raw["time"], kind="stable")
        changes = dict(zip(raw["time"][order].tolist(), raw["mspq"][order].tolist(), strict=True))
        if 0 not in changes:
            changes[0] = DEFAULT_TEMPO if not changes else changes[min(changes)]
        ticks = np.array(sorted(changes), np.int64)
        tempos = np.array([changes[t] for t in ticks], np.float64)
        tpq = max(int(score.ticks_per_quarter), 1)
        sec = np.concatenate([[0.0], np.cumsum(np.diff(ticks) * tempos[:-1] / 1e6 / tpq)])
        return cls(tpq, ticks, tempos, sec)

    def to_ticks(self, seconds: np.ndarray) -> np.ndarray:
        s = np.asarray(seconds, np.float64)
        i = np.clip(np.searchsorted(self.seconds, s, side="right") - 1, 0, len(self.ticks) - 1)
        ticks = self.ticks[i] + (s - self.seconds[i]) * 1e6 * self.ticks_per_beat / self.tempos[i]
        return np.round(ticks).astype(np.int64)

    def to_seconds(self, ticks: np.ndarray) -> np.ndarray:
        t = np.asarray(ticks, np.float64)
        i = np.clip(np.searchsorted(self.ticks, t, side="right") - 1, 0, len(self.ticks) - 1)
        return self.seconds[i] + (t - self.ticks[i]) * self.tempos[i] / 1e6 / self.ticks_per_beat

    def qpm_at(self, seconds: float) -> float:
        i = max(int(np.searchsorted(self.seconds, seconds, side="right")) - 1, 0)
        return 60e6 / float(self.tempos[i])


NoteArrays = dict[str, np.ndarray]


def prompt_track(notes: NoteArrays) -> NoteArrays:
    """The busiest non-drum track's notes (ties: the lower track index)."""
    pitched = ~np.asarray(notes["is_drum"], bool)
    tracks = np.asarray(notes["track"])[pitched]
    if len(tracks) == 0:
        return {k: np.asarray(v)[:0] for k, v in notes.items()}
    best = np.bincount(tracks).argmax()
    keep = pitched & (np.asarray(notes["track"]) == best)
    return {k: np.asarray(v)[keep] for k, v in notes.items()}


def notes_columns(notes: Any) -> NoteArrays:
    """The ingest notes table (pandas) as the columns ``prompt_track`` reads."""
    return {c: notes[c].to_numpy() for c in NOTE_COLUMNS if c in notes}


NOTE_COLUMNS = (
    "track",
    "program",
    "is_drum",
    "pitch",
    "velocity",
    "onset_s",
    "duration_s",
    "onset_beats",
    "duration_beats",
)


def beats_per_bar_of(score: Any) -> float:
    """Quarter notes per bar from the score's last time signature (4 if none)."""
    if not len(score.time_signatures):
        return 4.0
    last = score.time_signatures[-1]
    return float(last.numerator) * 4.0 / float(last.denominator)


def free_channel_of(channels: int) -> int:
    """The first channel (never drums) no track plays notes on; ``channels`` is a bit mask."""
    for ch in range(16):
        if ch != DRUM_CHANNEL and not channels >> ch & 1:
            return ch
    return 0


def continuation_track(
    tempo_map: TempoMap,
    new_notes: NoteArrays,
    program: int,
    channel: int,
    name: str = "midiml continuation",
) -> bytes:
    """One MTrk chunk (bytes) holding ``new_notes`` (seconds on the file's clock)."""
    onset = np.asarray(new_notes["onset_s"], np.float64)
    on = tempo_map.to_ticks(onset)
    off = tempo_map.to_ticks(onset + np.asarray(new_notes["duration_s"], np.float64))
    events: list[tuple[int, int, mido.Message]] = []
    for p, v, a, b in zip(new_notes["pitch"], new_notes["velocity"], on, off, strict=True):
        pitch, vel = int(np.clip(p, 0, 127)), int(np.clip(v, 1, 127))
        events.append(
            (int(a), 1, mido.Message("note_on", channel=channel, note=pitch, velocity=vel))
        )
        events.append(
            (max(int(b), int(a) + 1), 0, mido.Message("note_off", channel=channel, note=pitch))
        )
    track = mido.MidiTrack()
    track.append(mido.MetaMessage("track_name", name=name, time=0))
    track.append(mido.Message("program_change", channel=channel, program=int(program), time=0))
    now = 0
    for tick, _, msg in sorted(events, key=lambda e: (e[0], e[1])):
        track.append(msg.copy(time=tick - now))
        now = tick
    track.append(mido.MetaMessage("end_of_track", time=0))
    one = mido.MidiFile(type=1, ticks_per_beat=tempo_map.ticks_per_beat)
    one.tracks.append(track)
    buf = io.BytesIO()
    one.save(file=buf)
    return buf.getvalue()[14:]  # past the header chunk: the track chunk alone


def with_track(smf: bytes, chunk: bytes) -> bytes:
    """A Standard MIDI File (canonical: 6-byte header, then only track chunks) plus one more
    track chunk; format 0 becomes 1, the track count grows by one."""
    fmt, ntracks, division = struct.unpack(">HHH", smf[8:14])
    header = b"MThd" + struct.pack(">IHHH", 6, 1 if fmt == 0 else fmt, ntracks + 1, division)
    return header + smf[14:] + chunk
