"""Feature dictionary: values on hand-made note tables, and agreement with music21."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from midiml.data.midi import parse_midi
from midiml.represent.features import (
    FEATURE_DOCS,
    FEATURE_NAMES,
    WORDS_COLUMN,
    FeatureExtractor,
    extract_features,
    extract_features_streamed,
    write_features_streamed,
)


def _notes(file_id: str, rows: list[tuple], genre: str = "g") -> pd.DataFrame:
    """rows: (pitch, onset_beats, duration_beats[, track[, velocity[, is_drum]]]) at 120 qpm."""
    recs = []
    for r in rows:
        pitch, on, dur = r[:3]
        track = r[3] if len(r) > 3 else 0
        vel = r[4] if len(r) > 4 else 80
        drum = r[5] if len(r) > 5 else False
        recs.append(
            {
                "file_id": file_id,
                "genre": genre,
                "track": track,
                "program": 0,
                "is_drum": drum,
                "pitch": pitch,
                "velocity": vel,
                "onset_s": on / 2,
                "duration_s": dur / 2,
                "onset_beats": float(on),
                "duration_beats": float(dur),
            }
        )
    return pd.DataFrame(recs)


def _files(ids: list[str], genre: str = "g", status: str = "ok") -> pd.DataFrame:
    return pd.DataFrame(
        {
            "file_id": ids,
            "genre": genre,
            "status": status,
            "length_s": 10.0,
            "n_tracks": 1,
            "ts_numerator": 3,
            "ts_denominator": 4,
            "n_timesig_changes": 0,
            "qpm_mean": 120.0,
            "qpm_std": 0.0,
            "n_tempo_changes": 0,
        }
    )


C_MAJOR_SCALE = [(p, i, 1) for i, p in enumerate([60, 62, 64, 65, 67, 69, 71, 72])]


def test_columns_contract_and_docs():
    out = extract_features(_notes("a", C_MAJOR_SCALE), _files(["a"]))
    assert list(out.columns) == ["file_id", "genre", *FEATURE_NAMES, WORDS_COLUMN]
    assert set(FEATURE_DOCS) == set(FEATURE_NAMES) and len(FEATURE_NAMES) >= 50
    assert all(isinstance(v, str) and v for v in FEATURE_DOCS.values())
    assert out[FEATURE_NAMES].dtypes.map(lambda d: d == np.float64).all()
    assert FeatureExtractor().get_feature_names_out() == FEATURE_NAMES


def test_scale_values():
    row = extract_features(_notes("a", C_MAJOR_SCALE), _files(["a"])).iloc[0]
    assert row["key_tonic"] == 0 and row["key_mode"] == 1
    assert row["pc_0"] == pytest.approx(2 / 8) and row["pc_1"] == 0
    assert row["pitch_range"] == 12 and row["pitch_min"] == 60 and row["pitch_variety"] == 8
    assert row["interval_mean"] == pytest.approx(12 / 7)
    assert row["interval_step"] == 1.0 and row["interval_up_frac"] == 1.0
    assert row["polyphony_mean"] == 1 and row["chord_onset_frac"] == 0
    assert row["ioi_mean_beats"] == 1 and row["ioi_std_beats"] == 0
    assert row["on_beat_frac"] == 1 and row["grid16_frac"] == 1
    assert row["scale_fit"] == pytest.approx(1.0)
    assert row["notes_per_s"] == pytest.approx(0.8)
    assert row["ts_numerator"] == 3


def test_chords_are_typed_and_skipped_by_melodic_intervals():
    rows = [
        (60, 0, 1),
        (64, 0, 1),
        (67, 0, 1),  # C major triad
        (57, 1, 1),
        (60, 1, 1),
        (64, 1, 1),  # A minor triad
        (55, 2, 1),
        (59, 2, 1),
        (62, 2, 1),
        (65, 2, 1),  # G7
        (72, 3.5, 0.5),
        (74, 4, 0.5),
    ]  # two single notes, off-beat first
    row = extract_features(_notes("a", rows), _files(["a"])).iloc[0]
    assert row["chord_onset_frac"] == pytest.approx(3 / 5)
    assert row["chord_maj"] == pytest.approx(1 / 3)
    assert row["chord_min"] == pytest.approx(1 / 3)
    assert row["chord_dom7"] == pytest.approx(1 / 3)
    assert row["polyphony_max"] == 4
    assert row["interval_mean"] == 2  # only 72 -> 74; chord notes skipped
    assert row["on_beat_frac"] == pytest.approx(4 / 5)


def test_drums_velocity_and_missing_values():
    notes = pd.concat(
        [
            _notes("a", [(60, 0, 1, 0, 100), (64, 1, 1, 0, 50), (36, 0, 0.1, 9, 90, True)]),
            _notes("d", [(36, i, 0.1, 9, 90, True) for i in range(4)]),  # drums only
        ]
    )
    out = extract_features(notes, _files(["a", "d"])).set_index("file_id")
    assert not out.isna().any().any()
    assert out.loc["a", "drum_frac"] == pytest.approx(1 / 3)
    assert out.loc["a", "velocity_variety"] == 3
    assert out.loc["a", "pitch_max"] == 64  # the drum note (36) is not a pitch
    assert out.loc["d", "drum_frac"] == 1
    # a drums-only file has no pitch: fixed neutral values, not a statistic of other files
    assert out.loc["d", "pitch_mean"] == 60 and out.loc["d", "pitch_range"] == 0


def test_batch_equals_single_file_and_row_order_does_not_matter():
    a = _notes("a", C_MAJOR_SCALE)
    b = _notes("b", [(48, 0, 2), (55, 0, 2), (64, 0, 2), (43, 2, 2), (59, 2.5, 1)])
    files = _files(["a", "b"])
    both = extract_features(pd.concat([b, a]).sample(frac=1, random_state=0), files)
    for fid, notes in (("a", a), ("b", b)):
        alone = extract_features(notes, files[files["file_id"] == fid])
        pd.testing.assert_series_equal(
            both.set_index("file_id").loc[fid], alone.set_index("file_id").loc[fid]
        )


def test_quarantined_files_are_left_out():
    files = pd.concat([_files(["a"]), _files(["q"], status="quarantined")])
    out = extract_features(_notes("a", C_MAJOR_SCALE), files)
    assert out["file_id"].tolist() == ["a"]


def _write_groups(path, groups: list[pd.DataFrame]) -> None:
    """A notes parquet with one row group per frame (as the ingest writes its batches)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    tables = [pa.Table.from_pandas(g, preserve_index=False) for g in groups]
    with pq.ParquetWriter(path, tables[0].schema) as writer:
        for t in tables:
            writer.write_table(t)


def test_features_written_a_row_group_at_a_time_equal_the_whole_table(tmp_path):
    """The features stage's writer: a parquet row group per notes row group (flat memory),
    the frame ``extract_features`` gives on all notes at once (to float rounding: numpy sums
    over another batch), in the files' order, also when a usable file has no notes
    (min_notes 0) or the row groups come out of order; exactly the in-memory streamed frame,
    also with row groups worked on in two processes."""
    import pyarrow.parquet as pq

    a, b = _notes("a", C_MAJOR_SCALE), _notes("b", [(48, 0, 2), (55, 0, 2), (64, 0, 2)])
    c = _notes("c", [(36, 0, 1, 0, 90, True), (62, 1, 1), (65, 1.5, 0.5)])
    files = pd.concat([_files(["a", "b", "e"]), _files(["q"], status="quarantined")])
    files = pd.concat([files, _files(["c"])], ignore_index=True)  # e: usable, no notes
    notes = pd.concat([a, b, c], ignore_index=True)
    whole = extract_features(notes, files)
    for groups in ([a, b, c], [c, pd.concat([a, b])], [b, c, a]):
        path = tmp_path / "notes.parquet"
        _write_groups(path, groups)
        out = tmp_path / "features.parquet"
        assert write_features_streamed(path, files, out) == whole.shape
        written = pd.read_parquet(out)
        pd.testing.assert_frame_equal(written, whole)
        assert written.equals(extract_features_streamed(path, files))
        # row groups in two worker processes: the same frame, bit for bit
        assert written.equals(extract_features_streamed(path, files, n_jobs=2))
        assert pq.ParquetFile(out).num_row_groups > 1
    _write_groups(tmp_path / "split.parquet", [a.iloc[:3], a.iloc[3:]])
    with pytest.raises(ValueError, match="span several row groups"):
        write_features_streamed(tmp_path / "split.parquet", _files(["a"]), tmp_path / "x.pq")
    assert not (tmp_path / "x.pq").exists()  # written atomically


@pytest.mark.parametrize("work", ["bwv66.6", "bwv10.7"])
def test_agrees_with_music21_on_its_own_corpus(tmp_path, work):
    """A chorale from music21's corpus, written as MIDI by music21: same values as music21."""
    from music21 import corpus

    from midiml.evaluate.music21_agreement import COMPARED, TOLERANCES, compare, music21_features

    path = tmp_path / f"{work}.mid"
    corpus.parse(work).write("midi", fp=str(path))
    parsed = parse_midi(path, work)
    files = pd.DataFrame([{"file_id": work, "genre": "chorale", "status": "ok", **parsed.info}])
    ours = extract_features(parsed.notes.assign(genre="chorale"), files).set_index("file_id")
    theirs = pd.DataFrame({work: music21_features(path)}).T
    result = compare(ours[COMPARED], theirs, TOLERANCES)
    assert set(result) == set(COMPARED)
    for name, r in result.items():
        assert r["files"] == 1 and r["agree_frac"] == 1.0, (name, r)


def _song_s(rows: list[tuple[int, float, float]]) -> pd.DataFrame:
    """rows: (pitch, onset_s, duration_s) on one pitched track."""
    p, on, dur = (np.array(c) for c in zip(*rows, strict=True))
    return pd.DataFrame(
        {"pitch": p, "onset_s": on.astype(float), "duration_s": dur.astype(float), "is_drum": False}
    )


def test_accompaniment_repetition_and_modulation_features():
    from midiml.represent.musical import musical_features

    # oom-pah: the bass alternates C2 / G2 under a melody, every half second
    oompah = [(36 + 7 * (i % 2), i * 0.5, 0.4) for i in range(40)]
    oompah += [(72 + (i % 5), i * 0.5, 0.4) for i in range(40)]
    f = musical_features(_song_s(oompah), 0)
    assert f["m_bass_alternate"] > 0.9 and f["m_bass_repeat"] == 0.0
    held = [(36, i * 0.5, 0.4) for i in range(40)] + [
        (72 + (i % 5), i * 0.5, 0.4) for i in range(40)
    ]
    g = musical_features(_song_s(held), 0)
    assert g["m_bass_alternate"] == 0.0 and g["m_bass_repeat"] > 0.9

    # a 20 s phrase (no shorter period) played twice: repeats 20 s later, not within 16 s
    rng = np.random.default_rng(0)
    phrase = [(int(p), i * 0.5, 0.45) for i, p in enumerate(rng.integers(60, 84, 40))]
    twice = phrase + [(p, t + 20.0, d) for p, t, d in phrase]
    assert musical_features(_song_s(twice), 0)["m_repetition_long"] > 0.99
    other = [(int(p), 20.0 + i * 0.5, 0.45) for i, p in enumerate(rng.integers(60, 84, 40))]
    assert musical_features(_song_s(phrase + other), 0)["m_repetition_long"] < 0.8
    assert musical_features(_song_s(phrase[:30]), 0)["m_repetition_long"] == 0.0  # < 16 s

    # 16 s in C major, then 16 s in F# major: half the 8 s windows leave the home scale;
    # no window has a note outside its own scale
    c_major = [60, 62, 64, 65, 67, 69, 71, 72]
    home = [(c_major[i % 8], i * 0.5, 0.45) for i in range(32)]
    away = [(c_major[i % 8] + 6, 16.0 + i * 0.5, 0.45) for i in range(32)]
    m = musical_features(_song_s(home + away), 0)
    assert m["m_modulation"] == pytest.approx(0.5) and m["m_local_chromatic"] == 0.0
    s = musical_features(_song_s(home + [(p, t + 16.0, d) for p, t, d in home]), 0)
    assert s["m_modulation"] == 0.0
    chromatic = [(60 + i % 12, i * 0.5, 0.45) for i in range(32)]
    assert musical_features(_song_s(chromatic), 0)["m_local_chromatic"] > 0.3


def _progression(chords: list[tuple[int, ...]], seconds: float, arpeggio: float = 0.0):
    """Each chord (MIDI pitches, lowest first) for ``seconds``: held, or broken into notes
    ``arpeggio`` s apart that ring to the chord's end (as a sustain pedal leaves them)."""
    rows = []
    for k, chord in enumerate(chords):
        start = k * seconds
        for j, p in enumerate(chord):
            on = start + (j * arpeggio if arpeggio else 0.0)
            rows.append((p, on, start + seconds - on))
    return _song_s(rows)


II_V_I = [(50, 53, 57, 60), (43, 53, 59, 62), (48, 52, 55, 59)]  # Dm7 G7 Cmaj7


def test_progression_features_read_chords_and_root_motion():
    from midiml.represent.progression import PROGRESSION_NAMES, progression_features

    f = progression_features(_progression(II_V_I * 4, 2.0))
    assert set(f) == set(PROGRESSION_NAMES)
    for q in ("min7", "dom7", "maj7"):
        assert f[f"h_window_{q}"] == pytest.approx(1 / 3)
    # D->G, G->C fall a fifth (up 5); Cmaj7->Dm7 steps up 2
    assert f["h_root_step_5"] == pytest.approx(8 / 11)
    assert f["h_root_step_2"] == pytest.approx(3 / 11)
    assert f["h_dominant_fifth"] == pytest.approx(4 / 11)  # every G7 -> C
    assert f["h_chord_median_s"] == pytest.approx(2.0)
    assert f["h_changes_per_s"] == pytest.approx(11 / 24)
    assert f["h_template_fit"] > 0.9


def test_progression_features_hold_for_broken_chords_and_other_keys():
    from midiml.represent.progression import progression_features

    held = progression_features(_progression(II_V_I * 4, 2.0))
    broken = progression_features(_progression(II_V_I * 4, 2.0, arpeggio=0.1))
    up_a_third = progression_features(
        _progression([tuple(p + 4 for p in c) for c in II_V_I] * 4, 2.0)
    )
    for name in held:
        assert up_a_third[name] == pytest.approx(held[name]), name
    # broken within a window, the chords stay sevenths and the roots still fall by fifths
    # (the first window weighs the early notes more: some same-root quality changes)
    sevenths = ("h_window_dom7", "h_window_maj7", "h_window_min7")
    assert sum(broken[q] for q in sevenths) > 0.8
    steps = [broken[f"h_root_step_{k}"] for k in range(1, 12)]
    assert int(np.argmax(steps)) + 1 == 5
    assert broken["h_dominant_fifth"] > 0.2
    # a melody alone (one note at a time) is not chords: the fit falls
    scale = progression_features(
        _song_s([(60 + s, i * 0.5, 0.5) for i, s in enumerate([0, 2, 4, 5, 7, 9, 11, 12] * 3)])
    )
    assert scale["h_template_fit"] < held["h_template_fit"] - 0.2
    assert progression_features(_song_s([(60, 0.0, 1.0)])) == dict.fromkeys(held, 0.0)
