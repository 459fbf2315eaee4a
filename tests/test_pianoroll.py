"""Piano roll: notes land on the right steps and pitches; crops cover songs and pad short ones."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from midiml.represent.pianoroll import RollSpec, crop_starts, crops, piano_roll, song_rolls


def notes_frame(rows: list[tuple], file_id: str = "a") -> pd.DataFrame:
    """rows: (pitch, onset_beats, duration_beats[, velocity[, is_drum]]); 2 s per beat."""
    out = []
    for r in rows:
        pitch, on, dur = r[:3]
        vel = r[3] if len(r) > 3 else 100
        drum = r[4] if len(r) > 4 else False
        out.append(
            {
                "file_id": file_id,
                "pitch": pitch,
                "velocity": vel,
                "is_drum": drum,
                "onset_beats": on,
                "duration_beats": dur,
                "onset_s": on * 2.0,
                "duration_s": dur * 2.0,
            }
        )
    return pd.DataFrame(out)


def test_notes_cover_their_steps_and_pitches():
    roll = piano_roll(notes_frame([(60, 0.0, 1.0), (64, 1.0, 0.5)]), RollSpec(step=0.25))
    dense = roll.toarray()
    assert roll.shape == (128, 6)
    assert dense[60, :4].tolist() == [1, 1, 1, 1] and dense[60, 4:].sum() == 0
    assert dense[64, 4:6].tolist() == [1, 1] and dense[64, :4].sum() == 0
    assert dense.sum() == 6


def test_short_note_marks_its_onset_step_and_overlaps_stay_binary():
    roll = piano_roll(
        notes_frame([(60, 0.3, 0.01), (62, 0.0, 1.0), (62, 0.5, 1.0)]), RollSpec(step=0.25)
    ).toarray()
    assert roll[60].tolist()[:2] == [0, 1]
    assert roll.max() == 1.0
    assert roll[62, :6].tolist() == [1, 1, 1, 1, 1, 1]


def test_drums_range_velocity_and_seconds():
    notes = notes_frame([(36, 0, 1, 127, True), (20, 0, 1), (60, 0, 1, 64), (109, 0, 1)])
    spec = RollSpec(step=0.5, unit="seconds", pitch_low=21, pitch_high=108, velocity=True)
    roll = piano_roll(notes, spec).toarray()
    assert roll.shape == (88, 4)  # 1 beat = 2 s = 4 steps of 0.5 s; drum and out-of-range gone
    assert np.count_nonzero(roll.sum(axis=1)) == 1
    assert roll[60 - 21, 0] == pytest.approx(64 / 127)
    with_drums = piano_roll(notes, RollSpec(step=0.5, unit="seconds", include_drums=True))
    assert with_drums.toarray()[36].sum() == 4


def test_max_steps_caps_long_songs_and_empty_input_gives_one_column():
    roll = piano_roll(notes_frame([(60, 0, 100), (61, 200, 1)]), RollSpec(step=1, max_steps=10))
    assert roll.shape[1] == 10 and roll.toarray()[61].sum() == 0
    empty = piano_roll(notes_frame([(36, 0, 1, 100, True)]), RollSpec())
    assert empty.shape == (128, 1) and empty.nnz == 0
    with pytest.raises(ValueError, match="unit"):
        piano_roll(notes_frame([(60, 0, 1)]), RollSpec(unit="bars"))


def test_eval_crops_are_evenly_spaced_over_the_whole_song():
    starts = crop_starts(1000, 64, 5)
    assert starts[0] == 0 and starts[-1] == 1000 - 64 and len(starts) == 5
    assert np.all(np.diff(starts) > 0)
    assert crop_starts(30, 64, 5).tolist() == [0]  # shorter than a crop: one padded crop
    assert len(crop_starts(66, 64, 8)) == 3  # no duplicate starts


def test_random_crops_stay_inside_and_are_seeded():
    a = crop_starts(500, 64, 20, np.random.default_rng(1))
    b = crop_starts(500, 64, 20, np.random.default_rng(1))
    assert a.tolist() == b.tolist() and a.min() >= 0 and a.max() <= 500 - 64


def test_crops_are_dense_slices_padded_with_zeros():
    roll = piano_roll(notes_frame([(60, 0, 2.0)]), RollSpec(step=0.25))  # 8 steps
    x = crops(roll, 16, np.array([0, 4]))
    assert x.shape == (2, 128, 16) and x.dtype == np.float32
    assert x[0, 60, :8].sum() == 8 and x[0, 60, 8:].sum() == 0
    assert x[1, 60, :4].sum() == 4


def test_song_rolls_gives_every_requested_file_a_roll():
    notes = pd.concat([notes_frame([(60, 0, 1)], "a"), notes_frame([(70, 0, 2)], "b")])
    rolls = song_rolls(notes, RollSpec(step=0.5), ["b", "missing"])
    assert set(rolls) == {"b", "missing"}
    assert rolls["b"].toarray()[70].sum() == 4 and rolls["missing"].nnz == 0
