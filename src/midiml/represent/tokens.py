"""Songs as one multi-track token stream: MidiTok REMI with programs, drums included, + BPE.

A song is every track of the notes table (drums too, as ``Program_-1 PitchDrum_*``), rebuilt
as a symusic score from the beat columns: REMI writes ``Bar, Position, Program, Pitch,
Velocity, Duration`` per note, time in beats (no tempo tokens), so a continuation is placed
on the prompt's own tempo map when it is written. Bars are 4/4 (no time-signature tokens:
the grammar stays small; the prompt's metre is kept because the file's tempo map and time
signatures are copied, not re-encoded). BPE (MidiTok's ``train(model="BPE")``, per bar)
merges frequent successions, about 2-3x shorter sequences for the same music, so the
context holds a whole 8-16 bar prompt.

A sequence is ``[Genre_<g>, BOS, tokens..., EOS]``; genre ids follow MidiTok's vocabulary
(``len(tokenizer) + i``), since tokens added after BPE training are not saved by MidiTok.
Training songs get ``transpositions`` extra copies, each shifted by a seeded random number
of semitones (drums are never shifted) and, when the song is long enough, taken from a later
stretch of ``max_bars`` bars, so augmentation adds material, not only keys.

Bar plans: right before every ``Bar`` the stream carries ``BarNotes_<k> BarPoly_<k>``, that
bar's note count and mean notes per pitched onset in buckets (``add_bar_plans``). The model
writes the plan of each new bar before its notes, so "how busy is the next bar" is one
low-entropy decision it can copy from the previous bars' plans, instead of the sum of many
"another note / move on" decisions that drifted to the corpus mean (docs/continuation.md).
MidiTok 3.1 has such bar-level attribute controls (``ac_note_density_bar``,
``ac_polyphony_bar``), but disables every attribute control when
``one_token_stream_for_programs`` is set (``MusicTokenizer.__init__``), and REMI with
programs in one stream is this model's representation; so the plan tokens are MidiTok
*special tokens* of the config (saved and loaded with it; tokens added later with
``add_to_vocab`` are not) inserted after encoding. They stay out of BPE: it learns and
encodes the bars without them (a special token inside a bar string would split it, and the
tokenizer's word marker would then cost an empty id per piece), and the plan ids are put
back in front of the id that starts each bar, so they are single ids and never merged.

MidiTok imports torch from its package ``__init__`` (1-2 s); ``import_miditok`` loads it
without its PyTorch helpers for the torch-free inference path (MidiTok itself makes them
optional).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

TPQ = 480
BEATS_PER_BAR = 4
BASE_TYPES = (
    "Special", "Bar", "Position", "Program", "DrumProgram", "Pitch", "PitchDrum", "Velocity",
    "Duration", "BarNotes", "BarPoly",
)  # fmt: skip
(
    SPECIAL, BAR, POSITION, PROGRAM, DRUM_PROGRAM, PITCH, PITCH_DRUM, VELOCITY, DURATION,
    BAR_NOTES, BAR_POLY,
) = range(len(BASE_TYPES))  # fmt: skip
DRUM_PROGRAM_VALUE = -1  # MidiTok's program of drum tracks
# Bar plan buckets (lower bounds). Notes in the bar: about x1.4 per step from 3 on (the
# evaluation's density is a ratio of note counts, so a bucket is a ~30 % band wherever the
# music is), single counts below 3 where one note matters; 40+ is rare (dense piano bars).
BAR_NOTES_BOUNDS = (0, 1, 2, 3, 5, 7, 10, 14, 20, 28, 40)
# Mean notes per pitched onset of the bar, x10 (0 = no pitched note): half-note steps up to
# 3 (lines, dyads, triads: where most bars are), then whole notes; 6+ (clusters) is one.
BAR_POLY_BOUNDS = (0, 10, 13, 18, 23, 28, 35, 45, 55)
PLAN_TOKENS = tuple(f"BarNotes_{b}" for b in BAR_NOTES_BOUNDS) + tuple(
    f"BarPoly_{b}" for b in BAR_POLY_BOUNDS
)
# REMI with programs in one stream: which base token type may follow which; with bar plans
# a bar is announced by its plan: (start | Bar | Duration) -> BarNotes -> BarPoly -> Bar.
NEXT_TYPES_NO_PLANS = {
    SPECIAL: {BAR},
    BAR: {BAR, POSITION},
    POSITION: {PROGRAM, DRUM_PROGRAM},
    PROGRAM: {PITCH},
    DRUM_PROGRAM: {PITCH_DRUM},
    PITCH: {VELOCITY},
    PITCH_DRUM: {VELOCITY},
    VELOCITY: {DURATION},
    DURATION: {PROGRAM, DRUM_PROGRAM, POSITION, BAR},
}
NEXT_TYPES = NEXT_TYPES_NO_PLANS | {
    SPECIAL: {BAR_NOTES},
    BAR: {BAR_NOTES, POSITION},
    BAR_NOTES: {BAR_POLY},
    BAR_POLY: {BAR},
    DURATION: {PROGRAM, DRUM_PROGRAM, POSITION, BAR_NOTES},
}


def next_types(types: np.ndarray) -> dict[int, set[int]]:
    """The grammar of a base vocabulary's ``types`` (with bar plans when it has them)."""
    return NEXT_TYPES if (np.asarray(types) == BAR_NOTES).any() else NEXT_TYPES_NO_PLANS


def import_miditok() -> Any:
    """MidiTok without its PyTorch data helpers when torch is not loaded yet (0.3 s, not 2 s)."""
    if "miditok" not in sys.modules and "torch" not in sys.modules:
        sys.modules.setdefault("miditok.pytorch_data", None)  # type: ignore[arg-type]
    import miditok

    return miditok


def make_tokenizer(
    beat_res: Mapping[str, int] | None = None,
    num_velocities: int = 8,
    pitch_range: Sequence[int] = (21, 109),
    bar_plans: bool = True,
) -> Any:
    """REMI with programs in one stream (drums as program -1); ``beat_res`` maps "start-end"
    beat ranges to positions per beat (MidiTok's beat_res); ``bar_plans``: the plan tokens
    (``PLAN_TOKENS``) as special tokens, so they are saved with the config."""
    miditok = import_miditok()
    res = {tuple(int(x) for x in str(k).split("-")): int(v) for k, v in (beat_res or {}).items()}
    cfg = miditok.TokenizerConfig(
        pitch_range=tuple(pitch_range),
        beat_res=res or {(0, 4): 8, (4, 12): 4},
        num_velocities=int(num_velocities),
        special_tokens=["PAD", "BOS", "EOS", *(PLAN_TOKENS if bar_plans else ())],
        use_programs=True,
        one_token_stream_for_programs=True,
        use_time_signatures=False,
    )
    return miditok.REMI(cfg)


def save_tokenizer(tokenizer: Any, path: str | Path, genres: Sequence[str]) -> None:
    """MidiTok's own file (config + BPE model) plus the genre names."""
    tokenizer.save(Path(path))
    cfg = json.loads(Path(path).read_text())
    cfg["midiml_genres"] = list(genres)
    Path(path).write_text(json.dumps(cfg))


def load_tokenizer(path: str | Path) -> tuple[Any, list[str]]:
    """(MidiTok tokenizer, genres) from ``save_tokenizer``'s file."""
    miditok = import_miditok()
    genres = json.loads(Path(path).read_text()).get("midiml_genres", [])
    return miditok.REMI(params=Path(path)), list(genres)


def notes_to_score(notes: Mapping[str, np.ndarray], shift: int = 0, pitch_range=None) -> Any:
    """A multi-track symusic score (ticks at TPQ) from a notes table's beat columns: one track
    per (track, program, is_drum); pitched notes shifted by ``shift`` semitones (drums not)
    and dropped outside ``pitch_range``."""
    import symusic

    score = symusic.Score(TPQ)
    track_of = np.asarray(notes["track"], np.int64)
    program = np.asarray(notes["program"], np.int64)
    drum = np.asarray(notes["is_drum"], bool)
    pitch = np.asarray(notes["pitch"], np.int64) + np.where(drum, 0, shift)
    on = np.round(np.asarray(notes["onset_beats"], np.float64) * TPQ).astype(np.int64)
    dur = np.maximum(np.round(np.asarray(notes["duration_beats"], np.float64) * TPQ), 1)
    vel = np.clip(np.asarray(notes["velocity"], np.int64), 1, 127)
    ok = (pitch >= 0) & (pitch < 128)
    if pitch_range is not None:
        ok &= drum | ((pitch >= pitch_range[0]) & (pitch < pitch_range[1]))
    keys = np.stack([track_of, program, drum.astype(np.int64)], 1)
    for key in np.unique(keys[ok], axis=0):
        sel = ok & (keys == key).all(1)
        track = symusic.Track(program=int(key[1]) if not key[2] else 0, is_drum=bool(key[2]))
        track.notes = symusic.Note.from_numpy(
            on[sel].astype(np.int32),
            dur[sel].astype(np.int32),
            pitch[sel].astype(np.int8),
            vel[sel].astype(np.int8),
        )
        score.tracks.append(track)
    return score


def base_ids(tokenizer: Any, score: Any) -> np.ndarray:
    """The score's REMI ids before BPE, with the bar plans when the tokenizer has them
    (empty for a score without notes)."""
    if not any(len(t.notes) for t in score.tracks):
        return np.zeros(0, np.int64)
    ids = np.asarray(tokenizer.encode(score, encode_ids=False).ids, np.int64)
    types, values = base_vocab_table(tokenizer)
    return add_bar_plans(ids, types, values) if (types == BAR_NOTES).any() else ids


def bar_plan(types: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per bar of a base token sequence's ``types`` (without plans): (notes, pitched notes
    per pitched onset x10, 0 when none). Drums count as notes, not in the mean per onset."""
    types = np.asarray(types)
    bar = np.cumsum(types == BAR) - 1
    n_bars = int(bar.max()) + 1 if len(bar) else 0
    keep = bar >= 0
    notes = np.bincount(bar[(types == DURATION) & keep], minlength=n_bars)
    onset = np.cumsum((types == BAR) | (types == POSITION))
    pitched = (types == PITCH) & keep
    n_pitched = np.bincount(bar[pitched], minlength=n_bars)
    struck = np.unique(onset[pitched])  # onsets with a pitched note
    onset_bar = bar[np.searchsorted(onset, struck)]  # bar of each such onset
    n_onsets = np.bincount(onset_bar, minlength=n_bars)
    poly = np.where(n_onsets > 0, 10 * n_pitched / np.maximum(n_onsets, 1), 0.0)
    return notes, poly


def plan_buckets(notes: np.ndarray, poly: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bucket indices (into ``BAR_NOTES_BOUNDS`` / ``BAR_POLY_BOUNDS``) of bar plans."""
    n = np.searchsorted(BAR_NOTES_BOUNDS, np.asarray(notes), side="right") - 1
    p = np.searchsorted(BAR_POLY_BOUNDS, np.asarray(poly), side="right") - 1
    return n, np.where(np.asarray(poly) > 0, np.maximum(p, 1), 0)


def add_bar_plans(ids: np.ndarray, types: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``ids`` with ``BarNotes_<b> BarPoly_<b>`` of each bar right before its ``Bar``."""
    ids = np.asarray(ids, np.int64)
    t = types[ids]
    notes, poly = plan_buckets(*bar_plan(t))
    plan_ids = np.full((2, len(BAR_NOTES_BOUNDS)), -1, np.int64)
    for kind, row in ((BAR_NOTES, 0), (BAR_POLY, 1)):
        at = np.flatnonzero(types == kind)
        plan_ids[row, values[at]] = at
    bars = np.flatnonzero(t == BAR)
    pairs = np.stack([plan_ids[0, notes], plan_ids[1, poly]], 1)
    return np.insert(ids, np.repeat(bars, 2), pairs.ravel())


def split_plans(tokenizer: Any, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(base ids without plan tokens, the plan ids of each bar as rows of two)."""
    ids = np.asarray(ids, np.int64)
    types, _ = base_vocab_table(tokenizer)
    plan = (types[ids] == BAR_NOTES) | (types[ids] == BAR_POLY)
    return ids[~plan], ids[plan].reshape(-1, 2)


def bar_strings(tokenizer: Any, ids: np.ndarray) -> list[str]:
    """One string per bar (split before every Bar token), one character per base id: the
    units BPE learns from and encodes (MidiTok's per-bar split and byte alphabet). Bar plan
    tokens are left out (``bpe_encode`` puts them back)."""
    from miditok.constants import CHR_ID_START

    ids = split_plans(tokenizer, ids)[0]
    cuts = np.flatnonzero(np.asarray(ids) == tokenizer.vocab["Bar_None"])
    chunks = np.split(np.asarray(ids), cuts[cuts > 0])
    return ["".join(chr(int(i) + CHR_ID_START) for i in c) for c in chunks if len(c)]


def train_bpe(tokenizer: Any, seqs: Sequence[np.ndarray], vocab_size: int) -> None:
    """MidiTok's BPE on the bars of the given base sequences (no-op if vocab_size is small)."""
    if vocab_size > len(tokenizer):
        bars = [b for ids in seqs for b in bar_strings(tokenizer, ids)]
        tokenizer.train(vocab_size=int(vocab_size), model="BPE", iterator=bars)


def bpe_encode(tokenizer: Any, seqs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Base sequences -> model ids (BPE per bar when trained), in one batch; each bar's plan
    ids (special tokens: model id = base id) go back in front of the id that starts it."""
    if not tokenizer.is_trained:
        return [np.asarray(s, np.int64) for s in seqs]
    out = tokenizer._model.encode_batch(
        [bar_strings(tokenizer, s) for s in seqs], is_pretokenized=True
    )
    encoded = []
    for e, s in zip(out, seqs, strict=True):
        ids = np.asarray(e.ids, np.int64)
        pairs = split_plans(tokenizer, s)[1]
        if len(pairs):
            first = np.searchsorted(np.asarray(e.word_ids, np.int64), np.arange(len(pairs)))
            ids = np.insert(ids, np.repeat(first, 2), pairs.ravel())
        encoded.append(ids)
    return encoded


def encode(tokenizer: Any, score: Any) -> np.ndarray:
    """Model ids (BPE when trained) of a score; empty for a score without notes."""
    ids = base_ids(tokenizer, score)
    return bpe_encode(tokenizer, [ids])[0] if len(ids) else ids


def decode_notes(ids: Sequence[int], types: np.ndarray, values: np.ndarray, res: int) -> dict:
    """Base REMI ids -> notes in beats (program -1 = drums); bars are 4 beats, the first Bar
    starts bar 0. Incomplete notes are dropped."""
    rows = []
    bar, pos, prog, pitch, vel = -1, 0, 0, -1, -1
    for i in ids:
        t, v = int(types[i]), int(values[i])
        if t == BAR:
            bar, pos = bar + 1, 0
        elif t == POSITION:
            pos = v
        elif t in (PROGRAM, DRUM_PROGRAM):
            prog, pitch, vel = v, -1, -1
        elif t in (PITCH, PITCH_DRUM):
            pitch = v
        elif t == VELOCITY:
            vel = v
        elif t == DURATION and pitch >= 0 and vel >= 0:
            rows.append((pitch, vel, max(bar, 0) * BEATS_PER_BAR + pos / res, v / res, prog))
            pitch = vel = -1
    table = np.array(rows, np.float64).reshape(-1, 5)
    names = ("pitch", "velocity", "onset_beats", "duration_beats", "program")
    return {n: table[:, k] for k, n in enumerate(names)}


def base_vocab_table(tokenizer: Any) -> tuple[np.ndarray, np.ndarray]:
    """(type, value) of every base token id: Position/Pitch/Program/Velocity value, duration in
    positions (Duration), bucket index (BarNotes/BarPoly), -1 otherwise. Program_-1 (drums)
    is its own type: PitchDrum follows. Cached per tokenizer (read per encoded song)."""
    cached = getattr(tokenizer, "_midiml_vocab_table", None)
    if cached is not None and cached[0] == len(tokenizer.vocab):
        return cached[1], cached[2]
    vocab = tokenizer.vocab  # base vocabulary (token string -> id)
    res = positions_per_beat(tokenizer)
    types = np.full(len(vocab), SPECIAL, np.int64)
    values = np.full(len(vocab), -1, np.int64)
    kinds = {"Bar": BAR, "Position": POSITION, "Program": PROGRAM, "Pitch": PITCH}
    kinds |= {"PitchDrum": PITCH_DRUM, "Velocity": VELOCITY, "Duration": DURATION}
    kinds |= {"BarNotes": BAR_NOTES, "BarPoly": BAR_POLY}
    bounds = {"BarNotes": BAR_NOTES_BOUNDS, "BarPoly": BAR_POLY_BOUNDS}
    for token, idx in vocab.items():
        kind, _, value = token.partition("_")
        if kind not in kinds:
            continue
        types[idx] = kinds[kind]
        if kind in bounds:  # a plan token's value is its bucket index
            values[idx] = bounds[kind].index(int(value))
        elif kind == "Duration":
            beats, frac, r = (int(x) for x in value.split("."))
            values[idx] = beats * res + frac * res // r
        elif kind != "Bar":
            values[idx] = int(value)
        if token == f"Program_{DRUM_PROGRAM_VALUE}":
            types[idx] = DRUM_PROGRAM
    tokenizer._midiml_vocab_table = (len(vocab), types, values)
    return types, values


def expansions(tokenizer: Any) -> list[list[int]]:
    """Base token ids of every model id (a BPE id stands for several; a base id for itself)."""
    if not tokenizer.is_trained:
        return [[i] for i in range(len(tokenizer))]
    model = tokenizer._model
    table = tokenizer._vocab_learned_bytes_to_tokens
    base = tokenizer.vocab
    out = [[base[t] for t in table.get(model.id_to_token(i), [])] for i in range(len(tokenizer))]
    # special tokens are the base alphabet's first ids; Metaspace's word marker stands for none
    return [e or ([i] if i < len(base) else []) for i, e in enumerate(out)]


def positions_per_beat(tokenizer: Any) -> int:
    return int(max(tokenizer.config.beat_res.values()))


def invalid_successions(base_ids: Sequence[int], types: np.ndarray, values: np.ndarray) -> int:
    """Base successions breaking the REMI grammar (with bar plans when the vocabulary has
    them), plus positions not increasing in a bar."""
    bad, pos = 0, -1
    ids = np.asarray(base_ids, np.int64)
    grammar = next_types(types)
    for a, b in zip(ids[:-1], ids[1:], strict=True):
        if int(types[b]) not in grammar[int(types[a])]:
            bad += 1
        if types[b] == BAR:
            pos = -1
        elif types[b] == POSITION:
            bad += int(values[b] <= pos)
            pos = int(values[b])
    return bad


def song_windows(n_bars: int, copies: int, max_bars: int) -> list[int]:
    """First bar of each copy's stretch: later stretches of a long song, else its start."""
    starts = list(range(0, max(n_bars - max_bars // 2, 1), max_bars)) or [0]
    return [starts[k % len(starts)] for k in range(copies)]


def crop_bars(song: Mapping[str, np.ndarray], first_bar: int, max_bars: int) -> dict:
    """Notes with onsets in bars [first_bar, first_bar + max_bars), moved to start at bar 0."""
    lo = first_bar * BEATS_PER_BAR
    on = np.asarray(song["onset_beats"], np.float64)
    keep = (on >= lo) & (on < lo + max_bars * BEATS_PER_BAR)
    out = {k: np.asarray(v)[keep] for k, v in song.items()}
    out["onset_beats"] = out["onset_beats"] - lo
    return out


_WORKER: dict[str, Any] = {}


def _encode_parts(parts: list[tuple[dict, int]]) -> list[np.ndarray]:
    tok = _WORKER["tokenizer"]
    rng = tok.config.pitch_range
    return [base_ids(tok, notes_to_score(p, shift, rng)) for p, shift in parts]


def build_token_dataset(
    notes: Any,
    splits: Any,
    tokenizer: Any,
    genres: Sequence[str],
    transpositions: int = 1,
    transpose_range: Sequence[int] = (-5, 6),
    max_bars: int = 32,
    bpe_vocab_size: int = 0,
    seed: int = 0,
    workers: int = 1,
) -> dict[str, np.ndarray]:
    """Every split song's sequence ``[Genre, BOS, ids..., EOS]`` concatenated, with offsets.

    MidiTok's encoder is pure Python (~100k base tokens/s), so songs are encoded by
    ``workers`` processes; BPE is then trained on the training copies and applied to all.
    """
    import multiprocessing as mp

    rng = np.random.default_rng(seed)
    cols = ["track", "program", "is_drum", "pitch", "velocity", "onset_beats", "duration_beats"]
    by_file = {f: g[cols] for f, g in notes.groupby("file_id", sort=False)}
    parts, meta = [], []
    for row in splits.sort_values("file_id").itertuples(index=False):
        song = by_file.get(row.file_id)
        if song is None or song.empty:
            continue
        song = {c: song[c].to_numpy() for c in cols}
        n_bars = int(np.max(song["onset_beats"]) // BEATS_PER_BAR) + 1
        copies = 1 + (transpositions if row.split == "train" else 0)
        for k, first in enumerate(song_windows(n_bars, copies, max_bars)):
            shift = 0 if k == 0 else int(rng.integers(transpose_range[0], transpose_range[1] + 1))
            parts.append((crop_bars(song, first, max_bars), shift))
            meta.append((row.genre, row.split, row.file_id, shift, first))
    _WORKER["tokenizer"] = tokenizer
    chunks = [parts[i : i + 64] for i in range(0, len(parts), 64)]
    if workers > 1 and len(chunks) > 1:
        with mp.get_context("fork").Pool(workers) as pool:
            done = pool.map(_encode_parts, chunks)
    else:
        done = [_encode_parts(c) for c in chunks]
    base = [ids for chunk in done for ids in chunk]
    keep = [i for i, ids in enumerate(base) if len(ids)]
    base, meta = [base[i] for i in keep], [meta[i] for i in keep]
    train_bpe(
        tokenizer, [b for b, m in zip(base, meta, strict=True) if m[1] == "train"], bpe_vocab_size
    )
    encoded = bpe_encode(tokenizer, base)
    bos, eos = tokenizer.vocab["BOS_None"], tokenizer.vocab["EOS_None"]
    genre_id = {g: len(tokenizer) + i for i, g in enumerate(genres)}
    seqs = [
        np.r_[genre_id[m[0]], bos, e, eos].astype(np.int32)
        for e, m in zip(encoded, meta, strict=True)
    ]
    return {
        "ids": np.concatenate(seqs) if seqs else np.zeros(0, np.int32),
        "offsets": np.r_[0, np.cumsum([len(q) for q in seqs])].astype(np.int64),
        "base_tokens": np.array([len(b) for b in base], np.int64),
        "genres": np.asarray([m[0] for m in meta], str),
        "splits": np.asarray([m[1] for m in meta], str),
        "file_ids": np.asarray([m[2] for m in meta], str),
        "shifts": np.asarray([m[3] for m in meta], np.int64),
        "first_bars": np.asarray([m[4] for m in meta], np.int64),
        "vocab_size": np.int64(len(tokenizer) + len(genres)),
    }
