"""Song-level split: seeded, stratified by genre, disjoint, only usable files."""

from __future__ import annotations

import pandas as pd

from midiml.data.split import split_songs


def files_table(n_per_genre: dict[str, int]) -> pd.DataFrame:
    rows = [
        {"file_id": f"{g}/{i:03d}.mid", "genre": g, "status": "ok"}
        for g, n in n_per_genre.items()
        for i in range(n)
    ]
    rows.append({"file_id": "a/bad.mid", "genre": "a", "status": "quarantined"})
    return pd.DataFrame(rows)


def test_split_is_disjoint_stratified_and_seeded():
    files = files_table({"a": 40, "b": 20, "c": 3})
    s = split_songs(files, val=0.15, test=0.15, seed=7)
    assert "a/bad.mid" not in set(s["file_id"])
    assert len(s) == 63 and s["file_id"].is_unique
    counts = s.groupby(["genre", "split"]).size().unstack(fill_value=0)
    assert counts.loc["a", "test"] == 6 and counts.loc["b", "test"] == 3
    assert (counts.loc["c"] == 1).all()  # tiny genres still get one song each way
    pd.testing.assert_frame_equal(s, split_songs(files, 0.15, 0.15, seed=7))
    assert not s.equals(split_songs(files, 0.15, 0.15, seed=8))
