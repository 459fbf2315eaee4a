"""Song-level train/val/test split, seeded and stratified by genre.

Every later stage (windows, classifiers) reads this one table, so no window or
feature row of a test song is ever trained on.
"""

from __future__ import annotations

from hashlib import sha256

import numpy as np
import pandas as pd


def split_songs(files: pd.DataFrame, val: float, test: float, seed: int) -> pd.DataFrame:
    """Return ``file_id, genre, split`` for every usable (status ok) file.

    Files sharing a ``piece`` (versions of one piece: a performance, a transcription and a
    sequenced score) land in the same split, so no test song has its twin in training; a
    file without one is a piece of its own. Each genre draws from its own seeded stream,
    so adding or removing songs of one genre never moves another genre's songs.
    """
    ok = files[files["status"] == "ok"].sort_values("file_id")
    own = ok["file_id"].astype("string")
    piece = ok["piece"].astype("string").replace("", pd.NA).fillna(own) if "piece" in ok else own
    ok = ok.assign(_piece=piece.astype(str))
    rows = []
    for genre, g in ok.groupby("genre", sort=True):
        rng = np.random.default_rng([seed, int(sha256(str(genre).encode()).hexdigest()[:8], 16)])
        pieces = list(dict.fromkeys(g["_piece"]))  # in order of their first file id
        members = g.groupby("_piece", sort=False)["file_id"].apply(list)
        n_test = int(round(test * len(g)))
        n_val = int(round(val * len(g)))
        if len(g) >= 3:  # at least one song each for test and val when possible
            n_test, n_val = max(n_test, 1), max(n_val, 1)
        placed = 0
        for i in rng.permutation(len(pieces)):
            split = "test" if placed < n_test else "val" if placed < n_test + n_val else "train"
            for fid in members[pieces[i]]:
                rows.append({"file_id": fid, "genre": genre, "split": split})
            placed += len(members[pieces[i]])
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
