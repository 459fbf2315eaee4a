"""``read_notes(songs=...)`` reads only those songs' rows, in the table's order: what reading
every row and selecting them gave (stage ``reencoded_test_songs`` reads its test songs so)."""

import pandas as pd

from midiml.classify.tables import read_notes


def test_reading_some_songs_is_selecting_them(tmp_path):
    notes = pd.DataFrame(
        {
            "file_id": ["b/1", "a/2", "b/1", "c/3", "a/2"],
            "pitch": [60, 62, 64, 65, 67],
            "onset_s": [0.0, 0.5, 1.0, 1.5, 2.0],
        }
    )
    (tmp_path / "interim").mkdir()
    notes.to_parquet(tmp_path / "interim/notes.parquet")
    some = read_notes(tmp_path, songs=["a/2", "c/3"])
    picked = notes[notes["file_id"].isin(["a/2", "c/3"])].reset_index(drop=True)
    pd.testing.assert_frame_equal(some, picked)
    pd.testing.assert_frame_equal(read_notes(tmp_path), notes)
    assert read_notes(tmp_path, songs=[]).empty
