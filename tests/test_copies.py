"""A copy's id names its song, and a fit keeps only the copies of its own songs."""

from __future__ import annotations

import pandas as pd

from midiml.classify.copies import kept_copies, row_songs, song_ids


def test_a_copy_id_names_its_song_and_a_song_id_itself():
    ids = pd.Series(["lofi/a.mid#copy0", "lofi/a.mid", "classical/b.mid#excerpt1", "vg/c.mid#copy"])
    assert song_ids(ids).tolist() == ["lofi/a.mid", "lofi/a.mid", "classical/b.mid", "vg/c.mid"]


def test_copies_of_songs_outside_the_fit_are_left_out():
    copies = pd.DataFrame({"file_id": ["a#copy0", "c#copy0", "b#excerpt0", "a#excerpt0"]})
    keep, song = kept_copies(["a", "b"], copies)
    assert keep.tolist() == [True, False, True, True]
    assert song.tolist() == ["a", "c", "b", "a"]
    assert row_songs(["a", "b"], copies) == ["a", "b", "a", "b", "a"]
    assert row_songs(["a", "b"], None) == ["a", "b"]
