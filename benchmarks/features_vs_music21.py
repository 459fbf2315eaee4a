"""Benchmark: our feature extraction vs. music21 parse + the equivalent music21 features.

Same real files, one process: (a) ours = parse with ``parse_midi`` (symusic + mido) and
``extract_features`` on all of them in one vectorised call; (b) music21 = ``converter.parse``
plus its key analysis / jSymbolic extractors for the features both compute. Also times the
whole dataset's features from ``notes.parquet`` and checks agreement per feature.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pandas as pd

from midiml.data.midi import parse_midi
from midiml.evaluate.music21_agreement import COMPARED, TOLERANCES, compare, music21_features
from midiml.represent.features import extract_features

INTERIM = Path("data/interim")


def pick_files(files: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """``n`` usable files, as even across genres as possible, picked with ``seed``."""
    ok = files[files["status"] == "ok"].sort_values("file_id")
    genres = sorted(ok["genre"].unique())
    per = -(-n // max(len(genres), 1))
    parts = [
        g.sample(min(per, len(g)), random_state=seed) for _, g in ok.groupby("genre", sort=True)
    ]
    return pd.concat(parts).sort_values("file_id").head(n).reset_index(drop=True)


def ours_on_files(chosen: pd.DataFrame, params: Any) -> pd.DataFrame:
    """Parse each file and extract all features in one call (what the benchmark times)."""
    parsed = [parse_midi(p, fid) for p, fid in zip(chosen["path"], chosen["file_id"], strict=True)]
    notes = pd.concat(
        [pm.notes.assign(genre=g) for pm, g in zip(parsed, chosen["genre"], strict=True)],
        ignore_index=True,
    )
    info = pd.DataFrame(
        [
            {"file_id": fid, "genre": g, "status": "ok", **pm.info}
            for pm, fid, g in zip(parsed, chosen["file_id"], chosen["genre"], strict=True)
        ]
    )
    return extract_features(
        notes,
        info,
        params.onset_resolution,
        params.grid_tolerance,
        list(params.onset_divisors or []),
    )


def run(params: Any) -> dict[str, Any]:
    """Time both extractions on ``params.benchmark.n_files`` files; return the figures."""
    files = pd.read_parquet(INTERIM / "files.parquet")
    chosen = pick_files(files, int(params.benchmark.n_files), int(params.benchmark.seed))

    t0 = time.perf_counter()
    ours = ours_on_files(chosen, params)
    t_ours = time.perf_counter() - t0

    t0 = time.perf_counter()
    theirs = {
        fid: music21_features(p) for p, fid in zip(chosen["path"], chosen["file_id"], strict=True)
    }
    t_m21 = time.perf_counter() - t0

    notes = pd.read_parquet(INTERIM / "notes.parquet")
    t0 = time.perf_counter()
    full = extract_features(
        notes,
        files,
        params.onset_resolution,
        params.grid_tolerance,
        list(params.onset_divisors or []),
    )
    t_full = time.perf_counter() - t0

    agreement = compare(ours.set_index("file_id")[COMPARED], pd.DataFrame(theirs).T, TOLERANCES)
    return {
        "n_files": int(len(chosen)),
        "files_per_genre": {str(k): int(v) for k, v in chosen.groupby("genre").size().items()},
        "ours_s": round(t_ours, 3),
        "music21_s": round(t_m21, 3),
        "speedup": round(t_m21 / t_ours, 1),
        "full_dataset_files": int(len(full)),
        "full_dataset_features_s": round(t_full, 3),
        "n_features": int(full.shape[1] - 2),
        "agreement": agreement,
    }
