"""Event streams and windows: ordering, counts, tone-deaf view, split isolation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from midiml.represent.windows import (
    EventData,
    build_event_data,
    event_stream,
    make_windows,
    n_windows,
    save_event_data_streamed,
    spaced,
    tonedeaf,
)


def _notes(
    file_id: str, pitches: list[int], onsets: list[float], drum: list[bool] | None = None
) -> pd.DataFrame:
    n = len(pitches)
    return pd.DataFrame(
        {
            "file_id": file_id,
            "track": 0,
            "program": 0,
            "is_drum": drum or [False] * n,
            "pitch": pitches,
            "velocity": list(range(60, 60 + n)),
            "onset_s": onsets,
            "duration_s": [0.5] * n,
            "onset_beats": onsets,
            "duration_beats": [0.5] * n,
        }
    )


def test_event_stream_orders_by_onset_then_pitch_and_drops_drums():
    df = _notes("a", [64, 60, 67, 36], [1.0, 0.0, 0.0, 0.5], drum=[False, False, False, True])
    ev = event_stream(df)
    assert ev[:, 0].tolist() == [60, 67, 64]
    assert ev[:, 2].tolist() == pytest.approx([0.0, 0.0, 1.0])  # delta onset
    assert ev.shape == (3, 4)


@pytest.mark.parametrize(("n", "n_in", "n_out"), [(10, 3, 1), (10, 4, 2), (5, 5, 1), (3, 4, 1)])
def test_window_count_is_n_minus_nin_minus_nout_plus_one(n, n_in, n_out):
    stream = np.arange(n * 4, dtype=np.float32).reshape(n, 4)
    x, y = make_windows(stream, n_in, n_out)
    assert len(x) == len(y) == max(0, n - n_in - n_out + 1) == n_windows(n, n_in, n_out)
    if len(x):
        assert x.shape[1:] == (n_in, 4) and y.shape[1:] == (n_out, 4)
        np.testing.assert_array_equal(y[0, 0], stream[n_in])  # target follows the inputs
        np.testing.assert_array_equal(x[-1, -1], stream[n - n_out - 1])


def test_tonedeaf_is_transposition_invariant():
    stream = event_stream(_notes("a", [60, 64, 67, 72], [0, 1, 2, 3]))
    up = stream.copy()
    up[:, 0] += 5
    np.testing.assert_array_equal(tonedeaf(stream), tonedeaf(up))
    assert tonedeaf(stream)[:, 0].tolist() == [0, 4, 3, 5]


def test_build_event_data_keeps_test_windows_inside_test_songs(tmp_path):
    notes = pd.concat([_notes(f"f{i}", list(range(50, 70)), list(range(20))) for i in range(3)])
    splits = pd.DataFrame(
        {"file_id": ["f0", "f1", "f2"], "genre": "g", "split": ["train", "val", "test"]}
    )
    data = build_event_data(notes, splits, n_in=4, n_out=1, max_per_song={"train": 5})
    assert len(data.starts["train"]) == 5  # capped, evenly spaced
    assert len(data.starts["test"]) == 20 - 4 - 1 + 1
    test_song = data.songs("test")[0]
    lo, hi = data.offsets[test_song], data.offsets[test_song + 1]
    assert all(lo <= s and s + 5 <= hi for s in data.starts["test"])
    for split in ("train", "val"):
        assert all(not (lo <= s < hi) for s in data.starts[split])
    path = tmp_path / "w.npz"
    data.save(path)
    again = EventData.load(path)
    x1, y1 = data.windows("test")
    x2, y2 = again.windows("test")
    np.testing.assert_array_equal(x1, x2)
    np.testing.assert_array_equal(y1, y2)
    assert list(again.splits) == ["train", "val", "test"]


def test_spaced_is_deterministic_and_capped():
    assert spaced(10, None).tolist() == list(range(10))
    idx = spaced(1000, 7)
    assert len(idx) == 7 and idx[0] == 0 and idx[-1] == 999


def test_streamed_file_holds_exactly_what_the_in_memory_one_holds(tmp_path):
    """The `windows` stage writes song by song from the parquet's row groups (out of file_id
    order, a drum-only song, a song without notes): every member equals ``EventData.save``'s,
    dtype and shape included, and writing twice gives the same bytes."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    songs = [f"f{i:02d}" for i in range(12)]
    frames = [
        _notes(fid, rng.integers(40, 90, n).tolist(), np.sort(rng.random(n) * 30).tolist())
        for fid, n in zip(songs[::-1], rng.integers(3, 60, len(songs)), strict=True)
    ]
    frames.append(_notes("f99", [36, 38], [0.0, 0.5], drum=[True, True]))
    notes = pd.concat(frames, ignore_index=True)
    table = pa.Table.from_pandas(notes, preserve_index=False)
    writer = pq.ParquetWriter(tmp_path / "notes.parquet", table.schema)
    for frame in frames:  # one row group per song, as the ingest writes them
        writer.write_table(pa.Table.from_pandas(frame, preserve_index=False))
    writer.close()
    assert pq.ParquetFile(tmp_path / "notes.parquet").num_row_groups == len(frames)
    splits = pd.DataFrame(
        {
            "file_id": [*songs, "f99", "f50"],  # f50: in the split, no notes
            "genre": ["a", "b"] * 7,
            "split": (["train", "val", "test"] * 5)[:14],
        }
    )
    caps = {"train": 9, "test": 4}
    build_event_data(notes, splits, 4, 1, caps).save(tmp_path / "memory.npz")
    for name in ("a.npz", "b.npz"):
        counts = save_event_data_streamed(
            tmp_path / "notes.parquet", splits, 4, 1, caps, tmp_path / name
        )
    expected, streamed = np.load(tmp_path / "memory.npz"), np.load(tmp_path / "a.npz")
    assert list(streamed.keys()) == list(expected.keys())
    for key in expected:
        assert streamed[key].dtype == expected[key].dtype, key
        np.testing.assert_array_equal(streamed[key], expected[key], err_msg=key)
    assert counts["windows"] == {k: len(expected[f"starts_{k}"]) for k in ("train", "val", "test")}
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
