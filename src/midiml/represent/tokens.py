"""Songs as REMI tokens (MidiTok): the vocabulary of the token Transformer.

One song = its busiest non-drum track (the part a user's prompt is taken from too), rebuilt
as a symusic score from the notes table's beat columns and encoded by MidiTok's REMI:
``Bar, Position, Pitch, Velocity, Duration`` (no time signatures: every bar is 4/4, which
keeps the grammar small and the prompt's own metre is kept by the CLI's tempo map).
A sequence is ``[Genre_<g>, BOS, tokens..., EOS]``; the genre token lets a user ask for a
genre. Training songs are added transposed (``transpositions`` semitones), so the model sees
every melody in several keys.

The REMI grammar (which token type may follow which) is written down here once: the sampler
masks everything else, and ``invalid_successions`` measures how often a sequence breaks it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

TPQ = 480
TYPES = ("Special", "Bar", "Position", "Pitch", "Velocity", "Duration", "Genre", "Other")
SPECIAL, BAR, POSITION, PITCH, VELOCITY, DURATION, GENRE, OTHER = range(len(TYPES))
# REMI: Bar -> Position | Bar; Position -> Pitch; Pitch -> Velocity; Velocity -> Duration;
# Duration -> Pitch (chord) | Position (later in the bar) | Bar. Genre/BOS start a sequence.
NEXT_TYPES = {
    GENRE: {SPECIAL, BAR},
    SPECIAL: {BAR, SPECIAL},
    BAR: {BAR, POSITION},
    POSITION: {PITCH},
    PITCH: {VELOCITY},
    VELOCITY: {DURATION},
    DURATION: {PITCH, POSITION, BAR, SPECIAL},
    OTHER: set(),
}


def make_tokenizer(
    genres: Sequence[str],
    beat_res: Mapping[str, int] | None = None,
    num_velocities: int = 8,
    pitch_range: Sequence[int] = (21, 109),
) -> Any:
    """A REMI tokenizer with one ``Genre_<g>`` token per genre.

    ``beat_res`` maps "start-end" beat ranges to positions per beat (MidiTok's beat_res).
    """
    import miditok

    res = {tuple(int(x) for x in str(k).split("-")): int(v) for k, v in (beat_res or {}).items()}
    cfg = miditok.TokenizerConfig(
        pitch_range=tuple(pitch_range),
        beat_res=res or {(0, 4): 4, (4, 12): 2},
        num_velocities=int(num_velocities),
        special_tokens=["PAD", "BOS", "EOS"],
        use_programs=False,
        use_time_signatures=False,
    )
    tok = miditok.REMI(cfg)
    for g in genres:
        tok.add_to_vocab(f"Genre_{g}")
    return tok


def save_tokenizer(tokenizer: Any, path: str | Path) -> None:
    """MidiTok's config file plus the genre tokens (MidiTok does not save added tokens)."""
    import json

    tokenizer.save(Path(path))
    cfg = json.loads(Path(path).read_text())
    cfg["midiml_genres"] = [t[6:] for t in tokenizer.vocab if t.startswith("Genre_")]
    Path(path).write_text(json.dumps(cfg, indent=1))


def load_tokenizer(path: str | Path) -> Any:
    import json

    import miditok

    tok = miditok.REMI(params=Path(path))
    for g in json.loads(Path(path).read_text()).get("midiml_genres", []):
        tok.add_to_vocab(f"Genre_{g}")
    return tok


def notes_to_score(
    pitch: np.ndarray, velocity: np.ndarray, onset_beats: np.ndarray, duration_beats: np.ndarray
) -> Any:
    """One-track symusic score (ticks at TPQ) from note columns in beats."""
    import symusic

    score = symusic.Score(TPQ)
    track = symusic.Track(program=0)
    on = np.round(np.asarray(onset_beats, np.float64) * TPQ).astype(np.int64)
    dur = np.maximum(np.round(np.asarray(duration_beats, np.float64) * TPQ), 1).astype(np.int64)
    order = np.lexsort((np.asarray(pitch), on))
    for i in order:
        track.notes.append(
            symusic.Note(int(on[i]), int(dur[i]), int(pitch[i]), int(np.clip(velocity[i], 1, 127)))
        )
    score.tracks.append(track)
    return score


def encode(tokenizer: Any, score: Any) -> np.ndarray:
    """Token ids of a one-track score (empty for a score without notes)."""
    if not score.tracks or len(score.tracks[0].notes) == 0:
        return np.zeros(0, np.int64)
    seqs = tokenizer.encode(score)
    seq = seqs[0] if isinstance(seqs, list) else seqs
    return np.asarray(seq.ids, np.int64)


def decode(tokenizer: Any, ids: Sequence[int]) -> Any:
    """Token ids -> a one-track symusic score (MidiTok's own decoder)."""
    return tokenizer.decode([list(map(int, ids))])


def token_types(tokenizer: Any) -> np.ndarray:
    """(V,) type index (see TYPES) of every token id."""
    types = np.full(len(tokenizer), OTHER, np.int64)
    names = {t: i for i, t in enumerate(TYPES)}
    for token, idx in tokenizer.vocab.items():
        kind = token.split("_")[0]
        if kind in ("PAD", "BOS", "EOS"):
            types[idx] = SPECIAL
        else:
            types[idx] = names.get(kind, OTHER)
    return types


def token_values(tokenizer: Any) -> dict[str, np.ndarray]:
    """Per id: MIDI pitch (-1 if not a pitch), position in ticks of the bar's grid (-1),
    duration in beats (nan), velocity (-1)."""
    n = len(tokenizer)
    pitch = np.full(n, -1, np.int64)
    position = np.full(n, -1, np.int64)
    velocity = np.full(n, -1, np.int64)
    duration = np.full(n, np.nan)
    for token, idx in tokenizer.vocab.items():
        kind, _, value = token.partition("_")
        if kind == "Pitch":
            pitch[idx] = int(value)
        elif kind == "Position":
            position[idx] = int(value)
        elif kind == "Velocity":
            velocity[idx] = int(value)
        elif kind == "Duration":
            beats, frac, res = (int(x) for x in value.split("."))
            duration[idx] = beats + frac / res
    return {"pitch": pitch, "position": position, "velocity": velocity, "duration": duration}


def positions_per_beat(tokenizer: Any) -> int:
    return int(max(tokenizer.config.beat_res.values()))


def transition_mask(types: np.ndarray) -> np.ndarray:
    """(8, V) bool: which token ids may follow a token of each type (REMI grammar)."""
    mask = np.zeros((len(TYPES), len(types)), bool)
    for prev, allowed in NEXT_TYPES.items():
        mask[prev] = np.isin(types, list(allowed))
    return mask


def invalid_successions(ids: Sequence[int], types: np.ndarray, position: np.ndarray) -> int:
    """Successions breaking the REMI grammar, plus positions not increasing within a bar."""
    bad, pos = 0, -1
    ids = np.asarray(ids, np.int64)
    for a, b in zip(ids[:-1], ids[1:], strict=True):
        ta, tb = int(types[a]), int(types[b])
        if tb not in NEXT_TYPES.get(ta, set()):
            bad += 1
        if tb == BAR:
            pos = -1
        elif tb == POSITION:
            if position[b] <= pos:
                bad += 1
            pos = int(position[b])
    return bad


def busiest_track(notes: Any) -> Any:
    """The busiest non-drum track of one file's notes table (a pandas DataFrame)."""
    nd = notes.loc[~notes["is_drum"].astype(bool)]
    if nd.empty:
        return nd
    counts = nd.groupby("track").size()
    return nd.loc[nd["track"] == int(counts.idxmax())]


def song_ids(tokenizer: Any, song: Any, shift: int = 0, max_tokens: int = 4096) -> np.ndarray:
    """One song's (optionally transposed) tokens, at most ``max_tokens``."""
    lo, hi = tokenizer.config.pitch_range
    pitch = song["pitch"].to_numpy(np.int64) + shift
    keep = (pitch >= lo) & (pitch < hi)
    score = notes_to_score(
        pitch[keep],
        song["velocity"].to_numpy()[keep],
        song["onset_beats"].to_numpy()[keep],
        song["duration_beats"].to_numpy()[keep],
    )
    return encode(tokenizer, score)[:max_tokens]


def build_token_dataset(
    notes: Any,
    splits: Any,
    tokenizer: Any,
    transpositions: Sequence[int] = (),
    max_tokens_per_song: int = 4096,
) -> dict[str, np.ndarray]:
    """All songs' sequences ``[Genre, BOS, tokens..., EOS]`` concatenated, with offsets.

    Training songs are repeated once per transposition (original first); val/test are not.
    """
    bos, eos = tokenizer.vocab["BOS_None"], tokenizer.vocab["EOS_None"]
    parts, offsets, genres, split_of, file_ids, shifts = [], [0], [], [], [], []
    by_file = dict(tuple(notes.groupby("file_id", sort=False)))
    for row in splits.sort_values("file_id").itertuples(index=False):
        song = by_file.get(row.file_id)
        if song is None:
            continue
        song = busiest_track(song)
        if song.empty:
            continue
        for shift in [0, *(s for s in transpositions if s)] if row.split == "train" else [0]:
            ids = song_ids(tokenizer, song, shift, max_tokens_per_song)
            if len(ids) == 0:
                continue
            seq = np.r_[tokenizer.vocab[f"Genre_{row.genre}"], bos, ids, eos].astype(np.int32)
            parts.append(seq)
            offsets.append(offsets[-1] + len(seq))
            genres.append(row.genre)
            split_of.append(row.split)
            file_ids.append(row.file_id)
            shifts.append(shift)
    return {
        "ids": np.concatenate(parts) if parts else np.zeros(0, np.int32),
        "offsets": np.asarray(offsets, np.int64),
        "genres": np.asarray(genres, str),
        "splits": np.asarray(split_of, str),
        "file_ids": np.asarray(file_ids, str),
        "shifts": np.asarray(shifts, np.int64),
    }
