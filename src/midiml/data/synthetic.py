"""Synthetic sources (``kind: synthetic``): files a generator writes instead of a download.

A synthetic source's entry names its generator (``generator``: a ``_target_`` called with
``folder=``, e.g. ``write_loop_pack`` below) and its genre; ``write_synthetic`` writes its
files into ``<folder>/<genre>/``, the layout every folder of labelled music has here.

The generator shipped here writes made-up loops as other producers' loop packs would be: the
out-of-source check for a genre with one source (check sources, ``data.check_sources``). The
project has one lo-fi source, so nothing measures whether "lo-fi" was learned or the source's habits
were. These scripted loops differ from that source on purpose: other progressions (seventh,
ninth, eleventh and thirteenth chords in every key), other tempos (62-100 bpm), human
velocities and timing, 4-16 bars, one to three tracks, with or without a melody. Two styles,
written before the training re-encodings' textures (``perturb.retexture``: broken and comped
chords, walking bass, swing), which were added after these loops showed walking-bass and
comped loops called "videogame"; the styles now check how far those reach, no longer a
blind test of them:

- ``held``: a jazz progression as held or comped block chords over a root-fifth bass,
  a chord-and-scale-tone melody on every other loop;
- ``keys``: extended chords as swung arpeggios, rolled held chords or two-handed shell
  voicings over a walking bass, a pentatonic hook on every other loop.

They are not music from elsewhere; they are a floor: a genre model that calls them
another genre will not recognise other producers' loops either.
"""

from __future__ import annotations

import random
from pathlib import Path

import mido
from hydra.utils import instantiate

from midiml.data.sources import Source

STYLES = ("held", "keys")

HELD_CHORDS = {
    "maj7": [0, 4, 7, 11],
    "m7": [0, 3, 7, 10],
    "7": [0, 4, 7, 10],
    "m9": [0, 3, 7, 10, 14],
    "maj9": [0, 4, 7, 11, 14],
    "9": [0, 4, 7, 10, 14],
}
HELD_PROGRESSIONS = [
    [(2, "m7"), (7, "7"), (0, "maj7"), (0, "maj7")],
    [(9, "m9"), (2, "m7"), (7, "9"), (0, "maj9")],
    [(4, "m7"), (9, "m7"), (2, "m9"), (7, "7")],
    [(0, "maj7"), (9, "m7"), (5, "maj7"), (7, "7")],
    [(5, "maj9"), (4, "m7"), (2, "m7"), (0, "maj7")],
]
KEYS_CHORDS = {
    "m9": [0, 3, 7, 10, 14],
    "maj9": [0, 4, 7, 11, 14],
    "m11": [0, 3, 7, 10, 17],
    "13": [0, 4, 10, 14, 21],
    "add9": [0, 4, 7, 14],
    "m7b5": [0, 3, 6, 10],
    "6/9": [0, 4, 9, 14],
    "sus": [0, 5, 7, 10],
}
KEYS_PROGRESSIONS = [
    [(0, "m9"), (5, "m11"), (10, "13"), (3, "maj9")],
    [(0, "maj9"), (4, "m7b5"), (9, "m9"), (5, "6/9")],
    [(0, "m11"), (8, "maj9"), (3, "add9"), (10, "sus")],
    [(5, "maj9"), (7, "13"), (0, "m9"), (0, "m9")],
    [(0, "add9"), (7, "sus"), (9, "m9"), (5, "maj9")],
]
PENTATONIC = [0, 3, 5, 7, 10]

Note = tuple[int, float, float, int]  # pitch, onset (beats), duration (beats), velocity


def write_midi(path: Path, tracks: list[list[Note]], bpm: int, ticks_per_beat: int = 480) -> None:
    """One type-1 file, a track per list, the tempo in the first."""
    mid = mido.MidiFile(ticks_per_beat=ticks_per_beat)
    for i, notes in enumerate(tracks):
        track = mido.MidiTrack()
        mid.tracks.append(track)
        if i == 0:
            track.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm)))
        events = []
        for pitch, onset, duration, velocity in notes:
            onset = max(0.0, onset)
            events.append((round(onset * ticks_per_beat), 1, pitch, velocity))
            events.append((round((onset + duration) * ticks_per_beat), 0, pitch, 0))
        events.sort(key=lambda e: (e[0], e[1]))  # note-offs before note-ons at one tick
        now = 0
        for tick, _, pitch, velocity in events:
            track.append(mido.Message("note_on", note=pitch, velocity=velocity, time=tick - now))
            now = tick
    mid.save(path)


def held_loop(k: int, rng: random.Random) -> tuple[list[list[Note]], int, str]:
    key, bpm = rng.randrange(12), rng.choice([70, 75, 80, 88, 90, 95])
    bars, progression = rng.choice([4, 8, 8, 16]), rng.choice(HELD_PROGRESSIONS)
    chords: list[Note] = []
    melody: list[Note] = []
    bass: list[Note] = []
    for b in range(bars):
        root, quality = progression[b % len(progression)]
        r = 48 + (root + key) % 12
        if k % 3 == 0:  # held block chords
            for iv in HELD_CHORDS[quality]:
                at = b * 4 + rng.uniform(-0.04, 0.04) + 0.02
                chords.append((r + iv, at, 3.8, rng.randint(45, 75)))
        else:  # comped
            for step in [0, 1.5, 2.5] if k % 3 == 1 else [0, 2]:
                for iv in HELD_CHORDS[quality]:
                    at = b * 4 + step + rng.uniform(0, 0.04)
                    chords.append((r + iv, at, 1.2, rng.randint(40, 80)))
        bass.append((r - 12, b * 4, 1.8, rng.randint(60, 90)))
        bass.append((r - 5, b * 4 + 2.5, 1.2, rng.randint(55, 85)))
        if k % 2 == 0:
            t = b * 4.0
            while t < b * 4 + 4:
                d = rng.choice([0.5, 0.5, 1, 1.5])
                pitch = r + 12 + rng.choice([0, 2, 3, 4, 7, 9, 10, 11, 14])
                melody.append(
                    (pitch, t + rng.uniform(-0.04, 0.04) + 0.05, d * 0.9, rng.randint(50, 95))
                )
                t += d
    tracks = (
        [chords + melody + bass] if k % 4 == 0 else [chords, bass] + ([melody] if melody else [])
    )
    return tracks, bpm, f"held{k:02d}_{bpm}bpm_{bars}bars{'_melody' if melody else ''}"


def keys_loop(k: int, rng: random.Random) -> tuple[list[list[Note]], int, str]:
    key, bpm = rng.randrange(12), rng.choice([62, 68, 72, 78, 84, 92, 100])
    bars, progression = rng.choice([4, 4, 8, 16]), rng.choice(KEYS_PROGRESSIONS)
    swing = rng.choice([0.0, 0.08, 0.16])
    keys: list[Note] = []
    bass: list[Note] = []
    hook: list[Note] = []
    texture = k % 3
    for b in range(bars):
        root, quality = progression[b % len(progression)]
        chord, r = KEYS_CHORDS[quality], 50 + (root + key) % 12
        if texture == 0:  # swung eighth-note arpeggio
            for e in range(8):
                at = b * 4 + e * 0.5 + (swing if e % 2 else 0)
                keys.append((r + chord[(e * 2) % len(chord)], at, 0.45, rng.randint(35, 70)))
        elif texture == 1:  # rolled chord, pushed an eighth ahead of the bar
            for j, iv in enumerate(chord):
                at = (b * 4 - 0.5 if b else 0) + j * 0.02
                keys.append((r + iv, at, 4.0, rng.randint(40, 72)))
        else:  # left-hand shell, right-hand upper structure
            for iv in chord[:3]:
                keys.append((r - 12 + iv, b * 4, 2.0, rng.randint(50, 70)))
            for iv in chord[2:]:
                keys.append((r + iv, b * 4 + 2 + swing, 1.5, rng.randint(45, 68)))
        walk = [0, 7, 10, 12] if texture != 1 else [0, 0]
        for j, iv in enumerate(walk):
            at, d = b * 4 + j * 4 / len(walk), 4 / len(walk) * 0.9
            bass.append((r - 24 + iv, at, d, rng.randint(70, 100)))
        if k % 2 == 1:
            t = b * 4 + rng.choice([0.0, 0.5, 1.0])
            while t < b * 4 + 4:
                d = rng.choice([0.25, 0.5, 0.75, 1.0, 2.0])
                pitch = 62 + key + rng.choice(PENTATONIC) + rng.choice([0, 12]) - 12 * (key > 6)
                hook.append((pitch, t, d * 0.8, rng.randint(60, 110)))
                t += d + rng.choice([0, 0, 0.5])
    tracks = [keys + bass + hook] if k % 4 == 3 else [keys, bass] + ([hook] if hook else [])
    return tracks, bpm, f"keys{k:02d}_{bpm}bpm_{bars}bars{'_hook' if hook else ''}"


def write_loop_pack(folder: str | Path, style: str, n: int = 36, seed: int = 0) -> list[Path]:
    """Write ``n`` loops of ``style`` into ``folder`` (created); the same seed, the same files."""
    if style not in STYLES:
        raise ValueError(f"style must be one of {STYLES}, not {style!r}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(f"{style}-{seed}")
    make = held_loop if style == "held" else keys_loop
    paths = []
    for k in range(n):
        tracks, bpm, name = make(k, rng)
        path = folder / f"{name}.mid"
        write_midi(path, tracks, bpm)
        paths.append(path)
    return paths


def write_synthetic(source: Source, folder: str | Path, seed: int | None = None) -> list[Path]:
    """Write ``source``'s files (``kind: synthetic``) into ``<folder>/<its genre>/`` with its
    ``generator``; ``seed`` replaces the generator's own (another draw of the same source)."""
    if source.kind != "synthetic" or not source.generator:
        raise ValueError(f"{source.name}: not a synthetic source with a generator")
    cfg = dict(source.generator) | ({} if seed is None else {"seed": int(seed)})
    return list(instantiate(cfg, folder=Path(folder) / (source.genre or source.name)))
