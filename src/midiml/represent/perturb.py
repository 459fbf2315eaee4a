"""Re-encodings of one song: the same music as another person's file would carry it.

Each perturbation takes one file's notes (the columns of ``notes.parquet``) and its file
info (the ingest's ``n_tracks``, ``qpm_mean``, ``length_s``, ...) and returns new ones, so
features can be recomputed exactly as for an ingested file. They change what sources differ
in (key, tempo, tempo map, timing and velocity habits, track layout, length, looping) and
never what the genre label is about. Randomness comes only from the ``rng`` passed in.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

Info = dict[str, Any]
# (notes, info, rng, **options) -> (notes, info)
Perturbation = Callable[..., tuple[pd.DataFrame, Info]]
FLAT_QPM = 120.0  # a performance recording's MIDI: one tempo, beats are just seconds * 2


def _sorted(notes: pd.DataFrame) -> pd.DataFrame:
    return notes.sort_values(["onset_s", "pitch", "track"], kind="stable", ignore_index=True)


def _end_s(notes: pd.DataFrame) -> float:
    return float((notes["onset_s"] + notes["duration_s"]).max()) if len(notes) else 0.0


def transpose(notes, info, rng, max_shift: int = 6):
    """Shift pitched notes by a random non-zero interval (drums keep their keys)."""
    shift = int(rng.choice([s for s in range(-max_shift, max_shift + 1) if s]))
    out = notes.copy()
    pitched = ~out["is_drum"].to_numpy(bool)
    new = out["pitch"].to_numpy(int) + shift
    # fold notes that would leave the MIDI range back by an octave, so no note is lost
    new = np.where(new > 127, new - 12, np.where(new < 0, new + 12, new))
    out["pitch"] = np.where(pitched, new, out["pitch"].to_numpy(int)).astype("int16")
    return _sorted(out), dict(info)


def tempo_scale(notes, info, rng, low: float = 0.75, high: float = 1.33):
    """Play faster or slower: seconds scale, beats stay (the score is the same)."""
    factor = float(np.exp(rng.uniform(np.log(low), np.log(high))))
    out = notes.copy()
    out["onset_s"] *= factor
    out["duration_s"] *= factor
    new = dict(info)
    new["length_s"] = float(info.get("length_s", _end_s(notes))) * factor
    for k in ("qpm_mean", "qpm_std"):
        if k in new and new[k] == new[k]:
            new[k] = float(new[k]) / factor
    return out, new


def flatten_tempo(notes, info, rng):
    """Drop the tempo map: note times in seconds kept, beats recomputed at 120 bpm."""
    out = notes.copy()
    out["onset_beats"] = out["onset_s"] * FLAT_QPM / 60.0
    out["duration_beats"] = out["duration_s"] * FLAT_QPM / 60.0
    new = dict(info, qpm_mean=FLAT_QPM, qpm_std=0.0, n_tempo_changes=0)
    return out, new


def humanize(notes, info, rng, onset_sd_s: float = 0.015, velocity_sd: float = 12.0):
    """Human timing and touch: jittered onsets (seconds, beats alike) and varied velocities."""
    out = notes.copy()
    jitter = rng.normal(0.0, onset_sd_s, len(out))
    onset = np.maximum(out["onset_s"].to_numpy(float) + jitter, 0.0)
    moved = onset - out["onset_s"].to_numpy(float)
    qpm = float(info.get("qpm_mean") or FLAT_QPM)
    out["onset_s"] = onset
    out["onset_beats"] = np.maximum(out["onset_beats"] + moved * qpm / 60.0, 0.0)
    base = rng.uniform(60, 100)  # a player's overall loudness, then note-to-note variation
    vel = base + (out["velocity"].to_numpy(float) - out["velocity"].mean()) * 0.5
    vel = vel + rng.normal(0.0, velocity_sd, len(out))
    out["velocity"] = np.clip(np.round(vel), 1, 127).astype("int16")
    return _sorted(out), dict(info)


def arpeggiate(notes, info, rng, step_s: float = 0.12):
    """Break held chords: the notes of each onset start one after another, low to high (or
    high to low), as a player or producer spreads a block chord; durations shrink to match."""
    out = notes.copy()
    onset = out["onset_s"].to_numpy(float)
    key = np.round(onset, 3)
    order = np.lexsort((out["pitch"].to_numpy(int), key))
    if rng.random() < 0.5:
        order = np.lexsort((-out["pitch"].to_numpy(int), key))
    rank = np.zeros(len(out), int)
    k = key[order]
    first = np.r_[True, k[1:] != k[:-1]]
    idx = np.arange(len(k)) - np.maximum.accumulate(np.where(first, np.arange(len(k)), 0))
    rank[order] = idx
    drum = out["is_drum"].to_numpy(bool)
    shift = np.where(drum, 0.0, rank * step_s)
    dur = out["duration_s"].to_numpy(float)
    shift = np.minimum(shift, 0.5 * dur)  # never past half the note
    qpm = float(info.get("qpm_mean") or FLAT_QPM)
    out["onset_s"] = onset + shift
    out["duration_s"] = dur - shift
    out["onset_beats"] = out["onset_beats"] + shift * qpm / 60.0
    out["duration_beats"] = np.maximum(out["duration_beats"] - shift * qpm / 60.0, 1e-3)
    return _sorted(out), dict(info)


def merge_tracks(notes, info, rng):
    """Every pitched note on one piano track (drums stay a second track if present)."""
    out = notes.copy()
    drum = out["is_drum"].to_numpy(bool)
    out["track"] = np.where(drum, 1, 0).astype("int16")
    out["program"] = np.where(drum, out["program"].to_numpy(int), 0).astype("int16")
    return out, dict(info, n_tracks=1 + int(drum.any()))


def split_hands(notes, info, rng, split_pitch: int = 60):
    """A piano score's layout: right hand (from middle C up) and left hand on two tracks."""
    out = notes.copy()
    drum = out["is_drum"].to_numpy(bool)
    low = out["pitch"].to_numpy(int) < split_pitch
    out["track"] = np.where(drum, 2, np.where(low, 1, 0)).astype("int16")
    out["program"] = np.where(drum, out["program"].to_numpy(int), 0).astype("int16")
    return out, dict(info, n_tracks=2 + int(drum.any()))


def crop(notes, info, rng, min_s: float = 8.0, max_s: float = 60.0):
    """A random 8–60 s excerpt, moved to start at 0 (files no longer than it stay whole)."""
    length = float(info.get("length_s", _end_s(notes)) or _end_s(notes))
    want = float(rng.uniform(min_s, max_s))
    if length <= want or not len(notes):
        return notes.copy(), dict(info)
    onsets = notes["onset_s"].to_numpy(float)
    starts = onsets[onsets <= length - want]
    start = float(rng.choice(starts)) if len(starts) else 0.0
    keep = (onsets >= start) & (onsets < start + want)
    out = notes[keep].copy()
    first_beat = float(out["onset_beats"].min())
    out["onset_s"] -= start
    out["onset_beats"] -= first_beat
    return out.reset_index(drop=True), dict(info, length_s=want, n_notes=len(out))


def loop(notes, info, rng, min_s: float = 20.0, max_s: float = 60.0):
    """Repeat a short file end to end until it lasts 20–60 s (as a producer loops a pattern)."""
    length = float(info.get("length_s", _end_s(notes)) or _end_s(notes))
    want = float(rng.uniform(min_s, max_s))
    if length <= 0 or length >= want or not len(notes):
        return notes.copy(), dict(info)
    period_beats = float(np.ceil((notes["onset_beats"] + notes["duration_beats"]).max()))
    period_beats = max(period_beats, 1.0)
    reps = int(np.ceil(want / length))
    copies = []
    for i in range(reps):
        c = notes.copy()
        c["onset_s"] += i * length
        c["onset_beats"] += i * period_beats
        copies.append(c)
    out = _sorted(pd.concat(copies, ignore_index=True))
    return out, dict(info, length_s=length * reps, n_notes=len(out))


def _beat_clock(notes: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(beats, seconds) pairs of a song's notes, both rising: its own tempo map."""
    pitched = notes[~notes["is_drum"].to_numpy(bool)]
    end_b = pitched["onset_beats"].to_numpy(float) + pitched["duration_beats"].to_numpy(float)
    clock_b = np.r_[notes["onset_beats"].to_numpy(float), end_b]
    clock_s = np.r_[notes["onset_s"].to_numpy(float), (pitched["onset_s"] + pitched["duration_s"])]
    order = np.argsort(clock_b, kind="stable")
    return clock_b[order], np.maximum.accumulate(clock_s[order])


def reharmonize(notes, info, rng, beats_per_bar: float = 4.0):
    """Move each bar after the first by its own interval: a new progression of the same
    chords (their voicings and rhythm kept), as another producer's loop would have.

    Shifts are drawn from -7..7 semitones, half of them 0 (a bar keeps its chord); notes
    that would leave the MIDI range fold back by an octave; drums stay.
    """
    out = notes.copy()
    bars = np.floor(out["onset_beats"].to_numpy(float) / beats_per_bar + 1e-9).astype(int)
    bars -= bars.min() if len(bars) else 0
    choices = np.r_[np.zeros(12, int), np.arange(-7, 0), np.arange(1, 8)]
    shifts = rng.choice(choices, size=int(bars.max()) + 1 if len(bars) else 1)
    shifts[0] = 0
    pitched = ~out["is_drum"].to_numpy(bool)
    new = out["pitch"].to_numpy(int) + shifts[bars]
    new = np.where(new > 127, new - 12, np.where(new < 0, new + 12, new))
    out["pitch"] = np.where(pitched, new, out["pitch"].to_numpy(int)).astype(notes["pitch"].dtype)
    return _sorted(out), dict(info)


def add_melody(
    notes,
    info,
    rng,
    durations: tuple[float, ...] = (0.25, 0.5, 0.5, 0.75, 1.0, 1.0, 1.5, 2.0),
    reharmonize_p: float = 0.7,
):
    """A made-up melody over the song on a track of its own, as producers lay one over a
    chord loop, usually over a progression of their own (:func:`reharmonize` first, with
    probability ``reharmonize_p``).

    The line: one phrase of 4, 8 or 16 beats, repeated over the song with a few notes
    changed; notes from the song's scale (its seven most-sounding pitch classes), a tone
    of the sounding chord on every beat, near the previous note (mostly steps, some leaps);
    durations from ``durations`` (beats) with rests; a register near the song's top notes.

    Only for augmenting songs whose files carry chords alone (one source's loops): other
    people's loops of that genre come with melodies and other progressions, and without
    this the model learns "no melody" and "these seven pitch classes" as the genre.
    """
    if rng.random() < reharmonize_p:
        notes, info = reharmonize(notes, info, rng)
    pitched = notes[~notes["is_drum"].to_numpy(bool)]
    if not len(pitched):
        return notes.copy(), dict(info)
    on_b = pitched["onset_beats"].to_numpy(float)
    end_b = on_b + pitched["duration_beats"].to_numpy(float)
    clock_b, clock_s = _beat_clock(notes)
    start, stop = float(np.floor(on_b.min())), float(end_b.max())
    pcs = pitched["pitch"].to_numpy(int) % 12
    weight = np.bincount(pcs, weights=end_b - on_b, minlength=12)
    top7 = np.argsort(-weight, kind="stable")[:7]
    scale = set(top7[weight[top7] > 0].tolist())
    low = int(np.clip(np.quantile(pitched["pitch"], 0.9) + rng.integers(-5, 8), 57, 79))
    cands = np.array([q for q in range(low, low + 17) if q % 12 in scale])
    if not len(cands):
        return notes.copy(), dict(info)
    rest_p, spread = float(rng.uniform(0.1, 0.4)), float(rng.choice([2.0, 4.0]))
    phrase_beats = min(float(rng.choice([4.0, 8.0, 16.0])), max(stop - start, 1.0))
    phrase: list[tuple[float, float, int]] = []
    t, prev = 0.0, int(rng.choice(cands))
    while t < phrase_beats - 1e-6:
        dur = float(rng.choice(durations))
        if rng.random() >= rest_p:
            pool = cands
            if abs(t - round(t)) < 1e-6:  # on the beat: a tone of the sounding chord
                sounding = (on_b <= start + t + 1e-6) & (end_b > start + t + 1e-6)
                chord = np.unique(pcs[sounding]) if sounding.any() else np.unique(pcs)
                in_chord = np.isin(cands % 12, chord)
                pool = cands[in_chord] if in_chord.any() else cands
            w = np.exp(-np.abs(pool - prev) / spread)
            prev = int(rng.choice(pool, p=w / w.sum()))
            phrase.append((t, min(dur, phrase_beats - t), prev))
        t += dur
    rows = []
    for k in range(int(np.ceil((stop - start) / phrase_beats))):
        for t, dur, q in phrase:
            at = start + k * phrase_beats + t
            if at < stop - 1e-6:
                if k and rng.random() < 0.15:  # the repeat varies a little
                    q = int(rng.choice(cands))
                rows.append((at, min(dur, stop - at), q))
    if not rows:
        return notes.copy(), dict(info)
    t_b = np.array([r[0] for r in rows])
    d_b = np.maximum(np.array([r[1] for r in rows]) * float(rng.uniform(0.7, 1.0)), 1e-3)
    on_s = np.interp(t_b, clock_b, clock_s)
    dur_s = np.maximum(np.interp(t_b + d_b, clock_b, clock_s) - on_s, 1e-3)
    vel = np.clip(pitched["velocity"].mean() + rng.normal(5, 12, len(rows)), 1, 127)
    track = int(notes["track"].max()) + 1
    melody = pd.DataFrame(
        {
            "track": np.full(len(rows), track, "int16"),
            "program": np.zeros(len(rows), "int16"),
            "is_drum": np.zeros(len(rows), bool),
            "pitch": np.array([r[2] for r in rows], "int16"),
            "velocity": np.round(vel).astype("int16"),
            "onset_s": on_s,
            "duration_s": dur_s,
            "onset_beats": t_b,
            "duration_beats": d_b,
        }
    )
    extra = [c for c in notes.columns if c not in melody.columns]
    for c in extra:  # e.g. file_id: the song's own value
        melody[c] = notes[c].iloc[0]
    out = pd.concat([notes, melody[list(notes.columns)].astype(notes.dtypes)], ignore_index=True)
    new = dict(info, n_tracks=int(info.get("n_tracks", 1) or 1) + 1, n_notes=len(out))
    return _sorted(out), new


# an upper part (held, broken or comped chords) over a bass (held with them, or walking)
TEXTURES = ("broken", "comp", "walk", "broken+walk", "comp+walk")


def _chord_events(pitched: pd.DataFrame, grid_beats: float = 0.125) -> list[np.ndarray]:
    """The song's pitched notes grouped by onset (within ``grid_beats``): its chords, as
    positions of ``pitched``'s rows (in onset order, each chord's notes in table order).
    Positions, not frames: a pandas group per chord made ``retexture`` most of the
    ``classifier_copies`` stage's time."""
    key = np.round(pitched["onset_beats"].to_numpy(float) / grid_beats).astype(int)
    order = np.argsort(key, kind="stable")
    return np.split(order, np.flatnonzero(np.diff(key[order])) + 1) if len(order) else []


def _walk(tones: np.ndarray, next_low: int, beats: np.ndarray) -> list[int]:
    """A bass on every beat, an octave below the chord: its root first, then its other tones
    upwards, the last beat a semitone off the next chord's root (a walking bass)."""

    def down(q: int) -> int:
        return q - 12 if q >= 40 else q

    root, target = down(int(tones[0])), down(int(next_low))
    above = sorted({root + (int(t) - int(tones[0])) % 12 for t in tones[1:]} - {root}) or [root + 7]
    line = [root if j == 0 else above[(j - 1) % len(above)] for j in range(len(beats))]
    if len(beats) > 1:
        line[-1] = target + (1 if target < line[-2] else -1)
    return line


def retexture(notes, info, rng, texture: str | None = None, swing: bool | None = None):
    """Play the song's block chords in another accompaniment texture, as other producers do
    with the same progression (``TEXTURES``): the upper tones ``broken`` (one after another
    in eighths, up, down or up-and-down) or ``comp`` (struck again in a syncopated rhythm),
    over the lowest tone held or as a ``walk`` (an octave down on a track of its own, on
    every beat); ``swing`` delays off-beat eighths to the triplet (random when None).

    Chords are notes starting together (three or more tones); other notes stay as they are.
    Harmony and the beat clock are the song's own. Only for augmenting songs whose files
    carry held chords alone (one source's loops): without it the model learns "block
    chords" as the genre.
    """
    texture = texture or str(rng.choice(TEXTURES))
    upper, _, bass = texture.partition("+")
    if upper == "walk":
        upper, bass = "held", "walk"
    swing = bool(rng.random() < 0.5) if swing is None else swing
    pitched = notes[~notes["is_drum"].to_numpy(bool)]
    if not len(pitched):
        return notes.copy(), dict(info)
    clock_b, clock_s = _beat_clock(notes)
    events = _chord_events(pitched)
    onset = pitched["onset_beats"].to_numpy(float)
    ends = onset + pitched["duration_beats"].to_numpy(float)
    pitch = pitched["pitch"].to_numpy(int)
    tracks, velocity = pitched["track"].to_numpy(), pitched["velocity"].to_numpy()
    starts = [float(onset[g].min()) for g in events]
    pattern = str(rng.choice(["up", "down", "updown"]))
    offbeats = [(0.0, 1.5, 2.5), (0.5, 1.5, 3.0), (0.0, 0.75, 2.0, 2.75), (1.0, 2.5, 3.5)]
    comp = offbeats[int(rng.integers(len(offbeats)))]
    bass_track = int(notes["track"].max()) + 1
    rows: list[tuple[int, int, int, float, float]] = []  # track, pitch, velocity, beat, beats
    kept: list[np.ndarray] = []  # positions in ``pitched`` of the notes that stay
    for k, g in enumerate(events):
        start = starts[k]
        end = starts[k + 1] if k + 1 < len(events) else float(ends[g].max())
        span = max(end - start, 0.25)
        tones = np.sort(pitch[g])
        if len(tones) < 3:
            kept.append(g)
            continue
        track, vel = int(tracks[g[0]]), int(velocity[g].mean())
        if bass == "walk":
            beats = np.arange(start, end - 1e-6, 1.0)
            next_low = int(pitch[events[k + 1]].min()) if k + 1 < len(events) else tones[0]
            for at, q in zip(beats, _walk(tones, next_low, beats), strict=True):
                rows.append((bass_track, q, vel, at, min(0.9, end - at)))
            top = tones[1:]
        else:
            top = tones
            if upper != "broken":
                rows.append((track, int(tones[0]), vel, start, span))
                top = tones[1:]
        if upper == "broken":
            order = {"up": top, "down": top[::-1], "updown": np.r_[top, top[-2:0:-1]]}
            seq = order[pattern]
            for j, at in enumerate(np.arange(start, end - 1e-6, 0.5)):
                rows.append((track, int(seq[j % len(seq)]), vel, at, min(0.5, end - at)))
        elif upper == "comp":
            for bar in np.arange(start, end - 1e-6, 4.0):
                for at in comp:
                    if bar + at < end - 1e-6:
                        rows.extend((track, int(q), vel, bar + at, 0.4) for q in top)
        else:
            rows.extend((track, int(q), vel, start, span) for q in top)
    if not rows:
        return notes.copy(), dict(info)
    t_b = np.array([r[3] for r in rows], float)
    d_b = np.maximum(np.array([r[4] for r in rows], float), 1e-3)
    if swing:  # off-beat eighths late, on the triplet
        t_b = np.where(np.isclose(t_b % 1.0, 0.5), t_b + 1.0 / 6.0, t_b)
    on_s = np.interp(t_b, clock_b, clock_s)
    dur_s = np.maximum(np.interp(t_b + d_b, clock_b, clock_s) - on_s, 1e-3)
    vel = np.clip(np.array([r[2] for r in rows]) + rng.normal(0, 8, len(rows)), 1, 127)
    new = pd.DataFrame(
        {
            "track": np.array([r[0] for r in rows], "int16"),
            "program": np.zeros(len(rows), "int16"),
            "is_drum": np.zeros(len(rows), bool),
            "pitch": np.clip(np.array([r[1] for r in rows]), 0, 127).astype("int16"),
            "velocity": np.round(vel).astype("int16"),
            "onset_s": on_s,
            "duration_s": dur_s,
            "onset_beats": t_b,
            "duration_beats": d_b,
        }
    )
    for c in notes.columns:
        if c not in new.columns:  # e.g. file_id: the song's own value
            new[c] = notes[c].iloc[0]
    stay = [pitched.iloc[np.concatenate(kept)]] if kept else []
    parts = [notes[notes["is_drum"].to_numpy(bool)], *stay, new[list(notes.columns)]]
    out = pd.concat(parts, ignore_index=True).astype(notes.dtypes)
    n_tracks = int(out["track"].nunique())
    return _sorted(out), dict(info, n_tracks=n_tracks, n_notes=len(out))


PERTURBATIONS: dict[str, Perturbation] = {
    "transpose": transpose,
    "tempo_scale": tempo_scale,
    "flatten_tempo": flatten_tempo,
    "humanize": humanize,
    "arpeggiate": arpeggiate,
    "merge_tracks": merge_tracks,
    "split_hands": split_hands,
    "crop": crop,
    "loop": loop,
}


def random_reencoding(
    notes: pd.DataFrame, info: Info, rng: np.random.Generator, p: float = 0.5
) -> tuple[pd.DataFrame, Info, list[str]]:
    """Apply each perturbation with probability ``p`` (in a fixed order); return what was done.

    Crop and loop exclude each other; merging and splitting tracks too.
    """
    done: list[str] = []
    for name in (
        "transpose",
        "tempo_scale",
        "flatten_tempo",
        "humanize",
        "arpeggiate",
        "merge_tracks",
        "split_hands",
        "crop",
        "loop",
    ):
        if name == "split_hands" and "merge_tracks" in done:
            continue
        if name == "loop" and "crop" in done:
            continue
        if rng.random() < p:
            notes, info = PERTURBATIONS[name](notes, info, rng)
            done.append(name)
    return notes, info, done


def perturb_songs(
    notes: pd.DataFrame,
    files: pd.DataFrame,
    ids: list[str],
    seed: int,
    how: str | None = None,
    suffix: str = "",
    melody: set[str] | frozenset[str] = frozenset(),
    options: dict[str, Any] | None = None,
    texture: set[str] | frozenset[str] = frozenset(),
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Perturbed copies of songs ``ids``: one named perturbation (with keyword ``options``,
    e.g. a crop's ``min_s``/``max_s``), or a random mix (None).
    Songs in ``texture`` first have their chords played in another texture (``retexture``),
    then songs in ``melody`` get a made-up melody (``add_melody``).

    Returns (notes, files) with ids ``<id><suffix>`` and the original genre (labels kept).
    """
    info_rows = files.set_index("file_id")
    by_file = {fid: g for fid, g in notes.groupby("file_id", sort=False, observed=True)}
    rng = np.random.default_rng(seed)
    melody_rng = np.random.default_rng((seed, 1))  # own stream: re-encodings stay as without
    texture_rng = np.random.default_rng((seed, 2))
    out_notes, out_files = [], []
    for fid in ids:
        song = by_file.get(fid)
        if song is None or not len(song):
            continue
        info = info_rows.loc[fid].to_dict()
        song = song.reset_index(drop=True)
        if fid in texture:
            song, info = retexture(song, info, texture_rng)
        if fid in melody:
            song, info = add_melody(song, info, melody_rng)
        if how is None:
            new, new_info, _ = random_reencoding(song, info, rng)
        else:
            new, new_info = PERTURBATIONS[how](song, info, rng, **(options or {}))
        new_id = f"{fid}{suffix}"
        out_notes.append(new.assign(file_id=new_id))
        out_files.append({**new_info, "file_id": new_id, "status": "ok", "n_notes": len(new)})
    files_out = pd.DataFrame(out_files)
    notes_out = pd.concat(out_notes, ignore_index=True) if out_notes else notes.iloc[:0]
    return notes_out, files_out
