"""Which re-encoded copies belong to a fit, and whose song each training row is.

A fit's rows are its songs followed by the copies of those songs (``pipelines.with_copies``);
a copy's id is ``<song>#<how it was re-encoded>``. Kept apart from the fitting code so that
both the row builder and the row weights (``source_weighting``) read one definition.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def song_ids(file_ids: pd.Series) -> pd.Series:
    """The song each id names: a copy's id up to its ``#``, a song's id as it is."""
    return file_ids.str.split("#").str[0]


def kept_copies(ids: list[str], copies: pd.DataFrame) -> tuple[np.ndarray, pd.Series]:
    """(which rows of ``copies`` are copies of the songs ``ids``, the song of every row)."""
    song = song_ids(copies["file_id"])
    return song.isin(set(ids)).to_numpy(), song


def row_songs(ids: list[str], copies: pd.DataFrame | None) -> list[str]:
    """The song each row of ``with_copies(.., ids, .., copies, ..)`` comes from, in order."""
    if copies is None or not len(copies):
        return list(ids)
    keep, song = kept_copies(ids, copies)
    return [*ids, *song[keep]]
