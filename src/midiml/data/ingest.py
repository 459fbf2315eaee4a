"""Turn every downloaded MIDI file into note events; quarantine what cannot be used.

Counts always reconcile: every file found is either ``ok`` (its notes are in the
notes table) or ``quarantined`` with a reason. Nothing is dropped silently.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.contrib.concurrent import process_map

from midiml.data.labels import LABEL_FIELDS, labels_for
from midiml.data.manifest import sha256_file
from midiml.data.midi import MidiParseError, empty_notes, parse_midi
from midiml.data.sources import Source

MIDI_SUFFIXES = {".mid", ".midi"}
INFO_DEFAULTS = {
    "length_s": np.nan,
    "n_tracks": 0,
    "n_messages": 0,
    "n_notes": 0,
    "ticks_per_quarter": 0,
    "ts_numerator": 4,
    "ts_denominator": 4,
    "n_timesig_changes": 0,
    "qpm_mean": np.nan,
    "qpm_std": np.nan,
    "n_tempo_changes": 0,
}


@dataclass(frozen=True)
class Rules:
    """When a readable file is still unusable."""

    max_length_s: float = 3600.0
    min_notes: int = 1

    def reason(self, info: dict) -> str | None:
        if info["n_notes"] < self.min_notes:
            return "no notes" if info["n_notes"] == 0 else f"fewer than {self.min_notes} notes"
        if not np.isfinite(info["length_s"]) or info["length_s"] > self.max_length_s:
            return f"absurd length: {info['length_s']:.1f} s > {self.max_length_s:.0f} s"
        return None


@dataclass(frozen=True)
class FoundFile:
    path: Path  # on disk
    file_id: str  # "<genre>/<path inside the dataset>", stable across machines
    genre: str
    rel: str
    label_scheme: str
    source: str = ""  # the source's name (several sources may share a genre)


def find_files(raw_dir: str | Path, sources: Iterable[Source]) -> list[FoundFile]:
    """Every MIDI file below ``raw_dir/<source>``, sorted by id."""
    raw_dir = Path(raw_dir)
    found = []
    for src in sources:
        root = raw_dir / src.name
        if not root.is_dir():
            raise FileNotFoundError(f"{root}: missing; run the download stage for {src.name!r}")
        mine = []
        for p in root.rglob("*"):
            if p.is_file() and p.suffix.lower() in MIDI_SUFFIXES:
                rel = p.relative_to(root).as_posix()
                fid = f"{src.name}/{rel}"
                mine.append(FoundFile(p, fid, src.genre or src.name, rel, src.labels, src.name))
        if src.max_files is not None and len(mine) > src.max_files:
            # a stable choice that does not depend on the other sources or on the machine
            mine = sorted(mine, key=lambda f: hashlib.sha256(f.file_id.encode()).hexdigest())
            mine = mine[: int(src.max_files)]
        found.extend(mine)
    return sorted(found, key=lambda f: f.file_id)


def subset(files: list[FoundFile], per_genre: int | None, seed: int) -> list[FoundFile]:
    """A fixed, seeded choice of ``per_genre`` files from each genre (all when None)."""
    if not per_genre:
        return files
    rng = np.random.default_rng(seed)
    out: list[FoundFile] = []
    for genre in sorted({f.genre for f in files}):
        pool = [f for f in files if f.genre == genre]
        idx = rng.permutation(len(pool))[:per_genre]
        out.extend(pool[i] for i in sorted(idx))
    return sorted(out, key=lambda f: f.file_id)


def ingest_one(item: tuple[FoundFile, Rules]) -> tuple[dict, pd.DataFrame]:
    """Parse one file into (file row, notes); never raises for bad MIDI."""
    f, rules = item
    row: dict = {
        "file_id": f.file_id,
        "path": f.path.as_posix(),
        "sha256": sha256_file(f.path),
        "genre": f.genre,
        "source": f.source or f.genre,
        **labels_for(f.label_scheme, f.rel),
        **INFO_DEFAULTS,
        "status": "ok",
        "reason": None,
    }
    try:
        parsed = parse_midi(f.path, file_id=f.file_id)
    except MidiParseError as exc:
        row.update(status="quarantined", reason=str(exc).split(": ", 1)[-1])
        return row, empty_notes()
    row.update(parsed.info)
    reason = rules.reason(parsed.info)
    if reason:
        row.update(status="quarantined", reason=reason)
        return row, empty_notes()
    return row, parsed.notes


def ingest(
    files: list[FoundFile], rules: Rules, workers: int = 0, progress: bool = True
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Parse ``files`` in parallel; return (files table, notes table)."""
    workers = workers or os.cpu_count() or 1
    items = [(f, rules) for f in files]
    if workers > 1 and len(items) > 8:
        results = process_map(
            ingest_one, items, max_workers=workers, chunksize=4, desc="ingest", disable=not progress
        )
    else:
        from tqdm import tqdm

        results = [ingest_one(it) for it in tqdm(items, desc="ingest", disable=not progress)]
    rows = [r for r, _ in results]
    files_df = pd.DataFrame(rows, columns=list(rows[0]) if rows else ["file_id"])
    for col in ("path", "sha256", "genre", "source", "status", "reason", *LABEL_FIELDS):
        if col in files_df:
            files_df[col] = files_df[col].astype("string")
    notes = [n for _, n in results if len(n)]
    notes_df = pd.concat(notes, ignore_index=True) if notes else empty_notes()
    if len(notes_df):
        genre = files_df.set_index("file_id")["genre"]
        notes_df.insert(1, "genre", notes_df["file_id"].map(genre).astype("string"))
    else:
        notes_df.insert(1, "genre", pd.Series(dtype="string"))
    return files_df, notes_df
