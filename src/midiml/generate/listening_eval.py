"""Listening to an evaluated continuation: the prompt and a continuation as one MIDI file.

(The continuations themselves are made by :mod:`midiml.generate.continuation_eval`.)
"""

from __future__ import annotations

from typing import Any

import numpy as np


def write_sample_midi(prompt: dict[str, np.ndarray], new: dict[str, np.ndarray], path: Any) -> None:
    """Prompt (track 1) and continuation (track 2, starting where it does) at 120 qpm."""
    import mido

    tpq, tempo = 480, 500_000
    t0 = float(np.min(prompt["onset_s"]))
    mid = mido.MidiFile(ticks_per_beat=tpq)
    for channel, notes in ((0, prompt), (1, new)):
        events = []
        for p, v, on, d in zip(
            notes["pitch"], notes["velocity"], notes["onset_s"], notes["duration_s"], strict=True
        ):
            a = int(round((on - t0) * 2 * tpq))
            b = max(a + 1, int(round((on - t0 + d) * 2 * tpq)))
            vel = int(np.clip(v, 1, 127))
            events.append(
                (a, 1, mido.Message("note_on", channel=channel, note=int(p), velocity=vel))
            )
            events.append((b, 0, mido.Message("note_off", channel=channel, note=int(p))))
        track = mido.MidiTrack()
        if channel == 0:
            track.append(mido.MetaMessage("set_tempo", tempo=tempo, time=0))
        now = 0
        for tick, _, msg in sorted(events, key=lambda e: (e[0], e[1])):
            track.append(msg.copy(time=tick - now))
            now = tick
        mid.tracks.append(track)
    mid.save(str(path))
