"""Song-level train/val/test split, seeded and stratified by genre.

Every later stage (windows, classifiers) reads this one table, so no window or
feature row of a test song is ever trained on.
"""

from __future__ import annotations

from hashlib import sha256

import pandas as pd


def split_songs(files: pd.DataFrame, val: float, test: float, seed: int) -> pd.DataFrame:
    """Return ``file_id, genre, split`` for every usable (status ok) file.

    Files sharing a ``piece`` (versions of one piece: a performance, a transcription and a
    sequenced score) land in the same split, so no test song has its twin in training; a
    file without one is a piece of its own.

    Each piece gets a rank from a hash of (seed, genre, piece); a genre's lowest-ranked
    pieces are its test songs, the next its validation songs. A piece's rank never depends
    on which other files are present, so growing a source (a larger ``max_files``) only
    moves pieces near the two boundaries, and another genre's songs never move. (A seeded
    permutation of the pieces would reshuffle the whole genre whenever one file came in.)
    """
    ok = files[files["status"] == "ok"].sort_values("file_id")
    own = ok["file_id"].astype("string")
    piece = ok["piece"].astype("string").replace("", pd.NA).fillna(own) if "piece" in ok else own
    ok = ok.assign(_piece=piece.astype(str))
    rows = []
    for genre, g in ok.groupby("genre", sort=True):
        pieces = sorted(set(g["_piece"]), key=lambda piece: _rank(seed, str(genre), piece))
        members = g.groupby("_piece", sort=False)["file_id"].apply(list)
        n_test = int(round(test * len(g)))
        n_val = int(round(val * len(g)))
        if len(g) >= 3:  # at least one song each for test and val when possible
            n_test, n_val = max(n_test, 1), max(n_val, 1)
        placed = 0
        for piece in pieces:
            split = "test" if placed < n_test else "val" if placed < n_test + n_val else "train"
            for fid in members[piece]:
                rows.append({"file_id": fid, "genre": genre, "split": split})
            placed += len(members[piece])
    out = pd.DataFrame(rows, columns=["file_id", "genre", "split"])
    return out.sort_values("file_id", ignore_index=True).astype("string")


def _rank(seed: int, genre: str, piece: str) -> str:
    """A piece's place in its genre's draw: a hash, the same whatever else is present."""
    return sha256(f"{seed}\0{genre}\0{piece}".encode()).hexdigest()


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
