"""The user's MIDI file in, the same file plus one continuation track out.

The original is copied message for message with mido (every track, drums, tempo map, time
signatures, controllers), and the continuation goes on a new track in the prompt's
instrument. The prompt is the busiest non-drum track (melody, or a piano part with chords);
times convert between seconds and ticks through the file's own tempo map, so the new notes
play in the prompt's tempo and start when the prompt ends.
"""

from __future__ import annotations

from dataclasses import dataclass

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
    def of(cls, mid: mido.MidiFile) -> TempoMap:
        changes: dict[int, int] = {}
        for track in mid.tracks:
            now = 0
            for msg in track:
                now += msg.time
                if msg.type == "set_tempo":
                    changes[now] = msg.tempo
        if 0 not in changes:
            changes[0] = DEFAULT_TEMPO if not changes else changes[min(changes)]
        ticks = np.array(sorted(changes), np.int64)
        tempos = np.array([changes[t] for t in ticks], np.float64)
        sec = np.concatenate(
            [[0.0], np.cumsum(np.diff(ticks) * tempos[:-1] / 1e6 / mid.ticks_per_beat)]
        )
        return cls(mid.ticks_per_beat, ticks, tempos, sec)

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


def read_notes(mid: mido.MidiFile) -> NoteArrays:
    """Every note of the file as columns: track, program, is_drum, pitch, velocity, onset_s,
    duration_s, onset_beats, duration_beats. A note-off closes the oldest open note of its
    channel and pitch."""
    tempo_map = TempoMap.of(mid)
    rows: list[tuple[int, int, int, int, int, int, int]] = []
    for index, track in enumerate(mid.tracks):
        now = 0
        program = [0] * 16
        open_notes: dict[tuple[int, int], list[tuple[int, int]]] = {}
        for msg in track:
            now += msg.time
            if msg.type == "program_change":
                program[msg.channel] = msg.program
            elif msg.type == "note_on" and msg.velocity > 0:
                open_notes.setdefault((msg.channel, msg.note), []).append((now, msg.velocity))
            elif msg.type in ("note_off", "note_on") and open_notes.get((msg.channel, msg.note)):
                start, vel = open_notes[(msg.channel, msg.note)].pop(0)
                rows.append((index, program[msg.channel], msg.channel, msg.note, vel, start, now))
        for (channel, pitch), starts in open_notes.items():  # never released: end of track
            rows += [(index, program[channel], channel, pitch, v, t, now) for t, v in starts]
    table = np.array(rows, np.int64).reshape(-1, 7)
    onset = tempo_map.to_seconds(table[:, 5])
    return {
        "track": table[:, 0],
        "program": table[:, 1],
        "is_drum": table[:, 2] == DRUM_CHANNEL,
        "pitch": table[:, 3],
        "velocity": table[:, 4],
        "onset_s": onset,
        "duration_s": tempo_map.to_seconds(table[:, 6]) - onset,
        "onset_beats": table[:, 5] / mid.ticks_per_beat,
        "duration_beats": (table[:, 6] - table[:, 5]) / mid.ticks_per_beat,
    }


def prompt_track(notes: NoteArrays) -> NoteArrays:
    """The busiest non-drum track's notes (ties: the lower track index)."""
    pitched = ~np.asarray(notes["is_drum"], bool)
    tracks = np.asarray(notes["track"])[pitched]
    if len(tracks) == 0:
        return {k: np.asarray(v)[:0] for k, v in notes.items()}
    best = np.bincount(tracks).argmax()
    keep = pitched & (np.asarray(notes["track"]) == best)
    return {k: np.asarray(v)[keep] for k, v in notes.items()}


def beats_per_bar(mid: mido.MidiFile) -> float:
    """Quarter notes per bar from the file's last time signature (4 if none)."""
    quarters = 4.0
    for track in mid.tracks:
        for msg in track:
            if msg.type == "time_signature":
                quarters = msg.numerator * 4.0 / msg.denominator
    return quarters


def free_channel(mid: mido.MidiFile, preferred: int) -> int:
    """The prompt's channel if it is its own, else a channel no track uses (never drums)."""
    used = {m.channel for t in mid.tracks for m in t if hasattr(m, "channel")}
    for ch in [c for c in range(16) if c != DRUM_CHANNEL and c not in used]:
        return ch
    return preferred if preferred != DRUM_CHANNEL else 0


def append_continuation(
    mid: mido.MidiFile, new_notes: NoteArrays, program: int, name: str = "midiml continuation"
) -> mido.MidiFile:
    """A copy of ``mid`` with ``new_notes`` (seconds on the file's clock) on a new track."""
    out = mido.MidiFile(type=1 if mid.type == 0 else mid.type, ticks_per_beat=mid.ticks_per_beat)
    out.tracks = [mido.MidiTrack([m.copy() for m in t]) for t in mid.tracks]
    tempo_map = TempoMap.of(mid)
    channel = free_channel(mid, 0)
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
    out.tracks.append(track)
    return out
