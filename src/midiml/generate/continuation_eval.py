"""Held-out songs cut at a bar line, and every way of continuing them the evaluation compares.

A **cut** (``Cut``): a test-split song, its first bar line at or before its first note, then
``prompt_bars`` bars (half the song, rounded down to whole bars, if the song is shorter than
twice that; at least one bar). The bar is ``ts_numerator * 4 / ts_denominator`` quarter beats
from the file's first time signature in ``files.parquet`` (4 beats when there is no files
table). ``prompt`` = every note before the cut (drums too, for a model that continues all
instruments); ``real`` = the non-drum notes in the ``seconds`` after it (less if the song ends
sooner: the continuation is asked for exactly as long as the song goes on).

Continuations, all on the song's clock in seconds (``onset_s``). Their ``onset_beats`` (what
the rhythm measure reads) are where each note stands in the music: the real continuation's and
the references' from the file (the song's own beat clock, ``BeatClock``); a generator's the
beats it wrote its notes at (the token model's own beats, as the ticks of the file that
``midiml continue`` writes), or for a generator that places notes in seconds, those seconds on
the prompt's clock (the tempo it heard). The song's clock after the cut would place them
through tempo changes the generator never saw (a performance's rubato): on piano-midi.de
files that scattered the token model's on-beat notes over every position of the beat.

- ``loop``: the prompt's last two bars repeated (reference, no model).
- ``next_section``: the song's own next section: the same length of music starting at the
  first bar line after the real continuation, moved to the cut (reference, no model); a song
  too short for that gives its opening bars instead (for a loop: the loop again).
- ``random``: random notes at the prompt's notes per second, uniform over its pitch range, its
  durations and velocities resampled (the floor, a sanity row).
- every generator through :func:`continue_with`: ``continue_song`` (all instruments) when the
  continuer offers it, else ``continue_notes`` on the prompt's non-drum notes.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from midiml.generate.continuation import load_continuer
from midiml.generate.prompted import SamplingGuards

COLUMNS = (
    "pitch",
    "velocity",
    "onset_s",
    "duration_s",
    "onset_beats",
    "track",
    "program",
    "is_drum",
)
NoteArrays = dict[str, np.ndarray]
DEFAULT_BEATS_PER_BAR = 4.0
NO_GUARDS = SamplingGuards(False, False, False, False)
INTERIM = Path("data/interim")


class BeatClock:
    """Seconds <-> beats of one song, from its notes' (onset_s, onset_beats) pairs: linear
    between them (the file's tempo map as its notes sample it), the end tempos beyond."""

    def __init__(self, onset_s: np.ndarray, onset_beats: np.ndarray) -> None:
        s, idx = np.unique(np.asarray(onset_s, np.float64), return_index=True)
        b = np.asarray(onset_beats, np.float64)[idx]
        keep = np.r_[True, np.diff(b) > 0] if len(b) else np.zeros(0, bool)
        self.s, self.b = s[keep], b[keep]
        if len(self.s) < 2:  # one onset: 120 qpm around it
            s0 = self.s[0] if len(self.s) else 0.0
            b0 = self.b[0] if len(self.b) else 0.0
            self.s, self.b = np.array([s0, s0 + 0.5]), np.array([b0, b0 + 1.0])
        k = min(8, len(self.s) - 1)
        self.rate0 = (self.b[k] - self.b[0]) / (self.s[k] - self.s[0])
        self.rate1 = (self.b[-1] - self.b[-1 - k]) / (self.s[-1] - self.s[-1 - k])

    def beats(self, seconds: np.ndarray) -> np.ndarray:
        x = np.asarray(seconds, np.float64)
        out = np.interp(x, self.s, self.b)
        out = np.where(x < self.s[0], self.b[0] + (x - self.s[0]) * self.rate0, out)
        return np.where(x > self.s[-1], self.b[-1] + (x - self.s[-1]) * self.rate1, out)

    def seconds(self, beats: np.ndarray) -> np.ndarray:
        x = np.asarray(beats, np.float64)
        out = np.interp(x, self.b, self.s)
        out = np.where(x < self.b[0], self.s[0] + (x - self.b[0]) / self.rate0, out)
        return np.where(x > self.b[-1], self.s[-1] + (x - self.b[-1]) / self.rate1, out)


@dataclass
class Cut:
    """One held-out song cut at a bar line (see the module docstring)."""

    file_id: str
    genre: str
    source: str
    song: NoteArrays  # every note of the song, sorted by onset
    clock: BeatClock
    bar: float  # beats per bar
    start_beat: float  # the song's first bar line
    cut_beat: float
    cut_s: float
    seconds: float  # length of the real continuation (and of every other one)
    prompt: NoteArrays
    real: NoteArrays


def _take(notes: Mapping[str, np.ndarray], mask: np.ndarray) -> NoteArrays:
    return {k: np.asarray(v)[mask] for k, v in notes.items()}


def pitched(notes: Mapping[str, np.ndarray]) -> NoteArrays:
    """The non-drum notes."""
    return _take(notes, ~np.asarray(notes["is_drum"], bool))


def cut_song(
    file_id: str,
    genre: str,
    source: str,
    song: Mapping[str, np.ndarray],
    bar: float,
    prompt_bars: int,
    seconds: float,
    min_notes: int = 8,
) -> Cut | None:
    """The cut of one song, or None when its prompt or real continuation has under
    ``min_notes`` pitched notes."""
    order = np.argsort(np.asarray(song["onset_s"], np.float64), kind="stable")
    song = {k: np.asarray(v)[order] for k, v in song.items()}
    nd = pitched(song)
    if len(nd["pitch"]) < 2 * min_notes:
        return None
    clock = BeatClock(song["onset_s"], song["onset_beats"])
    start = float(np.floor(nd["onset_beats"].min() / bar + 1e-6) * bar)
    n_bars = int(np.ceil((float(nd["onset_beats"].max()) - start) / bar + 1e-6))
    bars = max(1, min(int(prompt_bars), n_bars // 2))
    cut_beat = start + bars * bar
    cut_s = float(clock.seconds(cut_beat))
    end = float((nd["onset_s"] + nd["duration_s"]).max())
    length = min(float(seconds), end - cut_s)
    onset = np.asarray(song["onset_s"], np.float64)
    prompt = _take(song, onset < cut_s)
    real = _take(nd, (nd["onset_s"] >= cut_s) & (nd["onset_s"] < cut_s + length))
    if len(real["pitch"]) < min_notes or (~prompt["is_drum"].astype(bool)).sum() < min_notes:
        return None
    return Cut(
        file_id, genre, source, song, clock, bar, start, cut_beat, cut_s, length, prompt, real
    )


def _stable_rank(file_id: str, seed: int) -> str:
    return hashlib.sha256(f"{seed}:{file_id}".encode()).hexdigest()


def held_out_cuts(
    notes: Any,
    splits: Any,
    files: Any | None,
    sources: Mapping[str, list[str]] | None,
    n_per_genre: int,
    prompt_bars: int,
    seconds: float,
    min_notes: int = 8,
    seed: int = 0,
    split: str = "test",
) -> list[Cut]:
    """Up to ``n_per_genre`` cuts per genre of ``split`` songs, taken in turn from the
    genre's ``sources`` (each in a seeded hash order; all the split's songs of the genre when
    no source is listed or none of the listed has songs there). pandas tables in."""
    test = splits.loc[splits["split"] == split, ["file_id", "genre"]]
    meta = test.set_index("file_id")
    meta["source"] = meta["genre"]
    meta["bar"] = DEFAULT_BEATS_PER_BAR
    if files is not None and len(files):
        f = files.set_index("file_id")
        common = meta.index.intersection(f.index)
        meta.loc[common, "source"] = f.loc[common, "source"].astype(str)
        num = f.loc[common, "ts_numerator"].astype(float)
        den = f.loc[common, "ts_denominator"].astype(float)
        bar = (num * 4.0 / den).where((num > 0) & (den > 0), DEFAULT_BEATS_PER_BAR)
        meta.loc[common, "bar"] = bar.fillna(DEFAULT_BEATS_PER_BAR)
    songs = notes.loc[notes["file_id"].isin(set(meta.index))]
    by_file = {fid: g for fid, g in songs.groupby("file_id", sort=False, observed=True)}
    cuts: list[Cut] = []
    for genre in sorted(meta["genre"].astype(str).unique()):
        of_genre = meta.loc[meta["genre"].astype(str) == genre]
        wanted = [s for s in (sources or {}).get(genre, []) if (of_genre["source"] == s).any()]
        groups = [of_genre.loc[of_genre["source"] == s] for s in wanted] or [of_genre]
        queues = [sorted(g.index, key=lambda fid: _stable_rank(fid, seed)) for g in groups]
        taken = 0
        while taken < n_per_genre and any(queues):
            for q in queues:
                if not q or taken >= n_per_genre:
                    continue
                fid = q.pop(0)
                if fid not in by_file:
                    continue
                song = {c: by_file[fid][c].to_numpy() for c in COLUMNS if c in by_file[fid]}
                row = meta.loc[fid]
                cut = cut_song(
                    fid, genre, str(row["source"]), song, float(row["bar"]), prompt_bars,
                    seconds, min_notes,
                )  # fmt: skip
                if cut is not None:
                    cuts.append(cut)
                    taken += 1
    return cuts


def load_cuts(
    cfg: Mapping[str, Any],
    split: str = "test",
    n_per_genre: int | None = None,
    seed: int | None = None,
    interim: Path = INTERIM,
) -> list[Cut]:
    """The evaluation's cuts (``model.continuation_eval`` settings ``cfg``) of one split's
    songs, read from the pipeline's tables (notes of that split only; files.parquet for the
    sources and bars when it exists). ``evaluate_generators`` and the benchmarks read the
    held-out songs through this one loader; choose decoding on ``split="val"``."""
    splits = pd.read_parquet(interim / "splits.parquet")
    ids = sorted(splits.loc[splits["split"] == split, "file_id"])
    notes = pd.read_parquet(
        interim / "notes.parquet", columns=["file_id", *COLUMNS], filters=[("file_id", "in", ids)]
    )
    files_path = interim / "files.parquet"
    files = pd.read_parquet(files_path) if files_path.exists() else None
    sources = {str(g): list(v) for g, v in (cfg.get("sources") or {}).items()}
    return held_out_cuts(
        notes, splits, files, sources,
        int(cfg["songs_per_genre"] if n_per_genre is None else n_per_genre),
        int(cfg["prompt_bars"]), float(cfg["seconds"]), int(cfg.get("min_notes", 8)),
        int(cfg["seed"] if seed is None else seed), split,
    )  # fmt: skip


def _moved(notes: NoteArrays, ds: float, db: float) -> NoteArrays:
    out = dict(notes)
    out["onset_s"] = notes["onset_s"] + ds
    out["onset_beats"] = notes["onset_beats"] + db
    return out


def _within(notes: NoteArrays, cut: Cut) -> NoteArrays:
    t = notes["onset_s"]
    return _take(notes, (t >= cut.cut_s) & (t < cut.cut_s + cut.seconds))


def loop_reference(cut: Cut) -> NoteArrays:
    """The prompt's last two bars (its non-drum notes) played again and again."""
    nd = pitched(cut.prompt)
    first = max(cut.start_beat, cut.cut_beat - 2 * cut.bar)
    tail = _take(nd, nd["onset_beats"] >= first - 1e-6)
    period_s = cut.cut_s - float(cut.clock.seconds(first))
    period_b = cut.cut_beat - first
    reps = int(np.ceil(cut.seconds / max(period_s, 1e-3))) + 1
    parts = [_moved(tail, (k + 1) * period_s, (k + 1) * period_b) for k in range(reps)]
    looped = {c: np.concatenate([p[c] for p in parts]) for c in tail}
    return _within(looped, cut)


def next_section_reference(cut: Cut) -> NoteArrays:
    """The song's own music of the same length from the first bar line after the real
    continuation, moved to the cut; its opening bars if the song ends before that."""
    nd = pitched(cut.song)
    end = float((nd["onset_s"] + nd["duration_s"]).max())
    after = float(cut.clock.beats(cut.cut_s + cut.seconds))
    beat = float(np.ceil((after - cut.start_beat) / cut.bar - 1e-6) * cut.bar + cut.start_beat)
    start_s = float(cut.clock.seconds(beat))
    if start_s + cut.seconds > end:  # no later section: the song's opening instead
        beat, start_s = cut.start_beat, float(cut.clock.seconds(cut.start_beat))
    section = _take(
        nd, (nd["onset_s"] >= start_s) & (nd["onset_s"] < start_s + cut.seconds)
    )  # fmt: skip
    return _within(_moved(section, cut.cut_s - start_s, cut.cut_beat - beat), cut)


def random_floor(cut: Cut, seed: int) -> NoteArrays:
    """Random notes at the prompt's rate in its pitch range (durations, velocities resampled)."""
    nd = pitched(cut.prompt)
    rng = np.random.default_rng(seed)
    span = max(cut.cut_s - float(nd["onset_s"].min()), 1e-3)
    n = max(1, int(round(len(nd["pitch"]) / span * cut.seconds)))
    lo, hi = int(nd["pitch"].min()), int(nd["pitch"].max())
    onset = np.sort(rng.uniform(cut.cut_s, cut.cut_s + cut.seconds, n))
    pick = rng.integers(0, len(nd["pitch"]), n)
    return {
        "pitch": rng.integers(lo, hi + 1, n).astype(np.float64),
        "velocity": nd["velocity"][pick].astype(np.float64),
        "onset_s": onset,
        "duration_s": nd["duration_s"][pick].astype(np.float64),
        "onset_beats": cut.clock.beats(onset),
        "program": nd["program"][pick],
        "is_drum": np.zeros(n, bool),
    }


def continue_with(
    continuer: Any,
    cut: Cut,
    seed: int,
    guards: SamplingGuards,
    temperature: float = 1.0,
    top_p: float = 0.95,
) -> NoteArrays:
    """A generator's new non-drum notes after the cut, with ``onset_beats`` on the song's beat
    clock: ``continue_song`` (all instruments; ``guards`` passed on) when it has one, else
    ``continue_notes`` on the prompt's non-drum notes (its guards were chosen at loading)."""
    if hasattr(continuer, "continue_song"):
        guarded = {"guards": guards} if guards_apply(continuer) else {}
        new = continuer.continue_song(
            cut.prompt, cut.seconds, temperature=temperature, top_p=top_p, seed=seed,
            genre=cut.genre, **guarded,
        )  # fmt: skip
    else:
        new = continuer.continue_notes(
            pitched(cut.prompt), cut.seconds, temperature, top_p, seed, cut.genre
        )
    cols = {k: np.asarray(v).reshape(-1) for k, v in dict(new).items()}
    n = len(cols.get("pitch", ()))
    out: NoteArrays = {
        c: np.asarray(cols[c], np.float64) if c in cols else np.zeros(n)
        for c in ("pitch", "velocity", "onset_s", "duration_s")
    }
    out["is_drum"] = np.asarray(cols["is_drum"], bool) if "is_drum" in cols else np.zeros(n, bool)
    out["program"] = np.asarray(cols.get("program", np.zeros(n)), np.int64)
    if "onset_beats" in cols:  # the beats it wrote the notes at (the module docstring)
        out["onset_beats"] = np.asarray(cols["onset_beats"], np.float64)
    else:
        out["onset_beats"] = prompt_clock(cut).beats(out["onset_s"])
    return pitched(out)


def prompt_clock(cut: Cut) -> BeatClock:
    """The beat clock a generator hears: the prompt's notes', its last tempo beyond them."""
    return BeatClock(cut.prompt["onset_s"], cut.prompt["onset_beats"])


def guards_apply(continuer: Any) -> bool:
    """Whether the sampling guards change this continuer: a continuer says so itself
    (``applies_guards``; the token model samples from its own distribution only), else one
    built with guards (the window models) has them and a VAE's latent samples have none."""
    return bool(getattr(continuer, "applies_guards", hasattr(continuer, "guards")))


ContinueFn = Callable[[Cut, int], NoteArrays]


def references(seed_offset: int = 0) -> dict[str, ContinueFn]:
    """The rows that need no model: ``loop``, ``next_section`` and the ``random`` floor."""
    return {
        "loop": lambda cut, seed: loop_reference(cut),
        "next_section": lambda cut, seed: next_section_reference(cut),
        "random": lambda cut, seed: random_floor(cut, seed + seed_offset),
    }


def model_rows(models_dir: Any, names: list[str]) -> dict[str, tuple[Any, SamplingGuards, dict]]:
    """``name/guards`` and ``name/free`` per saved generator (just ``name`` when the guards do
    not apply to it): row -> (continuer, guards, row description)."""
    rows: dict[str, tuple[Any, SamplingGuards, dict]] = {}
    for name in names:
        with_guards = load_continuer(models_dir, name, guards=True)
        desc = {"kind": "generator", "model": name, "own_rhythm": own_rhythm(with_guards)}
        if not guards_apply(with_guards):
            rows[name] = (with_guards, NO_GUARDS, {**desc, "guards": False})
            continue
        rows[f"{name}/guards"] = (with_guards, SamplingGuards(), {**desc, "guards": True})
        rows[f"{name}/free"] = (
            load_continuer(models_dir, name, guards=False), NO_GUARDS, {**desc, "guards": False}
        )  # fmt: skip
    return rows


def own_rhythm(continuer: Any) -> bool:
    """Whether the continuer writes its own onsets, durations and chord sizes: a window model
    replays the prompt's (``replays_prompt_rhythm``), and is then not eligible as the default
    (``evaluate.continuation.choose_default``)."""
    return not getattr(continuer, "replays_prompt_rhythm", False)


def run_rows(
    cuts: list[Cut],
    models_dir: Any,
    names: list[str],
    seeds: list[int],
    temperature: float = 1.0,
    top_p: float = 0.95,
    decoding: Mapping[str, Any] | None = None,
) -> tuple[dict[str, list[list[NoteArrays]]], dict[str, dict], dict[str, dict[str, float]]]:
    """Every row's continuations (row -> per cut -> per seed), the rows' descriptions (a
    generator that raises on a prompt answers nothing there: counted in ``failed``), and the
    wall and CPU seconds of each row (on a shared machine the CPU seconds are the fair
    measure). ``decoding``: attributes set on every continuer that has them (the token
    model's ``min_p``, ``prompt_guidance``, ``close_repeats``), to compare decodings."""
    samples: dict[str, list[list[NoteArrays]]] = {}
    meta: dict[str, dict] = {}
    seconds: dict[str, dict[str, float]] = {}
    kinds = {"loop": "reference", "next_section": "reference", "random": "floor"}
    for name, fn in references().items():
        t0, c0 = time.perf_counter(), time.process_time()
        samples[name] = [[fn(cut, s) for s in seeds] for cut in cuts]
        seconds[name] = {"wall": time.perf_counter() - t0, "cpu": time.process_time() - c0}
        meta[name] = {"kind": kinds[name], "model": None, "guards": None}
    empty = {c: np.zeros(0) for c in ("pitch", "velocity", "onset_s", "duration_s", "onset_beats")}
    for row, (cont, guards, desc) in model_rows(models_dir, names).items():
        for key, value in (decoding or {}).items():
            if hasattr(cont, key):
                setattr(cont, key, value)
        t0, c0 = time.perf_counter(), time.process_time()
        failed = 0
        per_cut = []
        for cut in cuts:
            per_seed = []
            for s in seeds:
                try:
                    per_seed.append(continue_with(cont, cut, s, guards, temperature, top_p))
                except ValueError:
                    failed += 1
                    per_seed.append(dict(empty))
            per_cut.append(per_seed)
        samples[row] = per_cut
        seconds[row] = {"wall": time.perf_counter() - t0, "cpu": time.process_time() - c0}
        meta[row] = {**desc, "failed": failed}
    return samples, meta, seconds
