"""Song-level train/val/test split, seeded and stratified by genre.

Every later stage (windows, classifiers) reads this one table, so no window or
feature row of a test song is ever trained on.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def split_songs(files: pd.DataFrame, val: float, test: float, seed: int) -> pd.DataFrame:
    """Return ``file_id, genre, split`` for every usable (status ok) file."""
    ok = files[files["status"] == "ok"].sort_values("file_id")
    rng = np.random.default_rng(seed)
    rows = []
    for genre, g in ok.groupby("genre", sort=True):
        ids = g["file_id"].to_numpy()[rng.permutation(len(g))]
        n_test = int(round(test * len(ids)))
        n_val = int(round(val * len(ids)))
        if len(ids) >= 3:  # at least one song each for test and val when possible
            n_test, n_val = max(n_test, 1), max(n_val, 1)
        for i, fid in enumerate(ids):
            split = "test" if i < n_test else "val" if i < n_test + n_val else "train"
            rows.append({"file_id": fid, "genre": genre, "split": split})
    out = pd.DataFrame(rows, columns=["file_id", "genre", "split"])
    return out.sort_values("file_id", ignore_index=True).astype("string")


def used_files(files: pd.DataFrame, sources: list[str] | None) -> set[str]:
    """Ids of the files from ``sources`` (a consumer's own list of source names).

    None, or a list naming no source present (e.g. the music21 corpus profile), means every
    file, so a consumer's list never empties a profile that lacks those sources.
    """
    source = files["source"] if "source" in files else files["genre"]
    wanted = set(sources or [])
    if not wanted & set(source.astype(str)):
        return set(files["file_id"].astype(str))
    return set(files.loc[source.astype(str).isin(wanted), "file_id"].astype(str))
