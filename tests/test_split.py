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


def test_versions_of_a_piece_share_a_split():
    files = files_table({"a": 40, "b": 20, "c": 3})
    plain = split_songs(files, 0.15, 0.15, seed=7)
    # no shared pieces: exactly the plain split (pieces of one file each)
    pd.testing.assert_frame_equal(plain, split_songs(files.assign(piece=None), 0.15, 0.15, 7))
    # a genre's split does not depend on the other genres' songs
    fewer = split_songs(files[~files["file_id"].str.startswith("a/")], 0.15, 0.15, 7)
    assert fewer.set_index("file_id")["split"].equals(
        plain.set_index("file_id").loc[fewer["file_id"], "split"]
    )
    grouped = files.assign(piece=None)
    trios = {f"a/{i:03d}.mid": f"piece{i // 3}" for i in range(30)}  # ten pieces, three versions
    grouped["piece"] = grouped["file_id"].map(trios)
    s = split_songs(grouped, 0.15, 0.15, seed=7).set_index("file_id")
    for _, ids in grouped.dropna(subset=["piece"]).groupby("piece")["file_id"]:
        assert s.loc[list(ids), "split"].nunique() == 1
    counts = s.groupby(["genre", "split"]).size().unstack(fill_value=0)
    assert counts.loc["a"].sum() == 40 and 5 <= counts.loc["a", "test"] <= 8
    b = s[s["genre"] == "b"]["split"]
    assert b.equals(plain.set_index("file_id").loc[b.index, "split"])  # other genres unmoved


def test_growing_a_genre_moves_only_boundary_songs():
    """A larger ``max_files`` adds files to a genre: the songs already there keep their split,
    but for a few near the test/val/train boundaries (a permutation moved about half)."""
    before = split_songs(files_table({"a": 200, "b": 20}), 0.15, 0.15, seed=7)
    grown = split_songs(files_table({"a": 300, "b": 20}), 0.15, 0.15, seed=7)
    old = before.set_index("file_id")["split"]
    new = grown.set_index("file_id").loc[old.index, "split"]
    assert (old != new).mean() < 0.1
    assert ((old == "test") & (new == "test")).sum() >= 0.8 * (old == "test").sum()
    counts = grown.groupby(["genre", "split"]).size().unstack(fill_value=0)
    assert counts.loc["a", "test"] == 45 and counts.loc["a", "val"] == 45  # exact shares
