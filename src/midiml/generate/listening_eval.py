"""Every generator continues the same held-out prompts; evaluate/listening.py scores them.

Prompts are the first ``n_prompt`` notes of the busiest non-drum track of test songs (the
part `midiml continue` would continue), the reference row is what the song really plays in
the next ``seconds``. Each generator continues each prompt with its ``continue_notes`` and
its default sampling options, ``seeds`` times.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from midiml.generate.prompted import Continuer
from midiml.represent.audio import render_wav

COLUMNS = ("pitch", "velocity", "onset_s", "duration_s", "onset_beats", "duration_beats")


def held_out_prompts(
    notes: Any, splits: Any, n_prompt: int = 32, seconds: float = 20.0, max_prompts: int = 40
) -> list[dict[str, Any]]:
    """Test-split prompts (a pandas notes table and splits table in, dicts of arrays out)."""
    test = sorted(splits.loc[splits["split"] == "test", "file_id"])
    step = max(1, len(test) // max_prompts)
    by_file = dict(tuple(notes.loc[notes["file_id"].isin(test[::step])].groupby("file_id")))
    out = []
    for fid in test[::step]:
        song = by_file.get(fid)
        if song is None:
            continue
        nd = song.loc[~song["is_drum"].astype(bool)]
        if nd.empty:
            continue
        track = nd.loc[nd["track"] == nd.groupby("track").size().idxmax()]
        track = track.sort_values(["onset_s", "pitch"], kind="stable")
        if len(track) < n_prompt + 8:
            continue
        prompt = track.iloc[:n_prompt]
        end = float(prompt["onset_s"].iloc[-1])
        real = track.loc[(track["onset_s"] > end) & (track["onset_s"] <= end + seconds)]
        out.append(
            {
                "file_id": fid,
                "genre": str(song["genre"].iloc[0]) if "genre" in song else None,
                "prompt": {c: prompt[c].to_numpy() for c in COLUMNS},
                "real": {c: real[c].to_numpy() for c in COLUMNS},
            }
        )
    return out


def generate_samples(
    continuers: dict[str, Continuer],
    prompts: list[dict[str, Any]],
    seconds: float = 20.0,
    seeds: int = 3,
    temperature: float = 1.0,
    top_p: float = 0.95,
) -> dict[str, list[list[dict[str, np.ndarray]]]]:
    """name -> per prompt -> per seed: the new notes of each continuation."""
    return {
        name: [
            [cont.continue_notes(p["prompt"], seconds, temperature, top_p, s) for s in range(seeds)]
            for p in prompts
        ]
        for name, cont in continuers.items()
    }


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


def write_audio_samples(
    prompts: list[dict[str, Any]],
    samples: dict[str, list[list[dict[str, np.ndarray]]]],
    samples_dir: Any,
    n_audio: int = 1,
) -> list[Any]:
    """MIDI + WAV of the first ``n_audio`` prompts' first-seed continuation per generator."""
    from pathlib import Path

    files = []
    for name, per_prompt in samples.items():
        for i, seeds in enumerate(per_prompt[:n_audio]):
            mid = Path(samples_dir) / f"{name}_listen_{i}.mid"
            write_sample_midi(prompts[i]["prompt"], seeds[0], mid)
            wav = mid.with_suffix(".wav")
            render_wav(mid, wav)
            files += [mid, wav]
    return files
