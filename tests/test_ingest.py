"""Ingest: every file ends up used or quarantined with a reason; counts reconcile."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from midiml.data.ingest import Rules, find_files, ingest, subset
from midiml.data.labels import labels_for
from midiml.data.midi import MidiParseError, parse_midi
from midiml.data.sources import Source
from midiml.evaluate.dataset_table import dataset_table
from midiml.report.dataset import render_markdown

SOURCES = [
    Source(name="alpha", kind="music21", labels="music21"),
    Source(name="beta", kind="music21", labels="music21"),
]


@pytest.fixture
def raw(tmp_path: Path, midi_writer) -> Path:
    """Two genres of good files plus one of each kind of bad file."""
    root = tmp_path / "raw"
    for i in range(3):
        midi_writer(root / "alpha" / "x" / f"good{i}.mid", [(60 + i, 0, 1), (64, 1, 2)])
        midi_writer(root / "beta" / "y" / f"good{i}.mid", [(48, 0, 0.5)] * 1 + [(50, 1, 0.5)])
    (root / "alpha" / "x" / "corrupt.mid").write_bytes(b"MThd\x00\x00\x00\x06garbage")
    midi_writer(root / "beta" / "y" / "silent.mid", notes=[])
    # 16.7 s per beat (the largest tempo MIDI allows) over 300 beats: ~5,000 s
    midi_writer(root / "beta" / "y" / "absurd.mid", [(60, 0, 1), (62, 299, 1)], tempo=16_777_215)
    (root / "beta" / "notes.txt").write_text("not midi")
    return root


def test_parse_midi_reads_notes_in_seconds_and_beats(tmp_path, midi_writer):
    path = midi_writer(tmp_path / "a.mid", [(60, 0, 1), (67, 2, 0.5)], tempo=1_000_000)
    parsed = parse_midi(path, file_id="g/a.mid")
    n = parsed.notes
    assert list(n["pitch"]) == [60, 67]
    assert n["onset_beats"].tolist() == [0.0, 2.0]
    assert n["onset_s"].tolist() == pytest.approx([0.0, 2.0])  # 1 s per beat
    assert n["duration_s"].tolist() == pytest.approx([1.0, 0.5])
    assert parsed.info["n_notes"] == 2 and parsed.info["n_tracks"] == 1
    assert parsed.info["qpm_mean"] == pytest.approx(60.0)
    assert parsed.info["length_s"] == pytest.approx(2.5)


def test_parse_error_names_the_file(tmp_path):
    bad = tmp_path / "bad.mid"
    bad.write_bytes(b"\x00\x01 not a midi header")
    with pytest.raises(MidiParseError, match=r"bad\.mid: unreadable MIDI"):
        parse_midi(bad)


def test_bad_files_are_quarantined_and_counts_reconcile(raw):
    found = find_files(raw, SOURCES)
    assert len(found) == 9  # notes.txt is not MIDI
    files, notes = ingest(found, Rules(max_length_s=3600, min_notes=1), workers=1, progress=False)
    assert len(files) == len(found)
    status = dict(zip(files["file_id"], files["status"], strict=True))
    reason = dict(zip(files["file_id"], files["reason"], strict=True))
    assert status["alpha/x/corrupt.mid"] == "quarantined"
    assert reason["alpha/x/corrupt.mid"].startswith("unreadable MIDI")
    assert reason["beta/y/silent.mid"] == "no notes"
    assert reason["beta/y/absurd.mid"].startswith("absurd length: 50")
    ok = files[files["status"] == "ok"]
    assert len(ok) == 6
    assert set(notes["file_id"]) == set(ok["file_id"])  # quarantined files contribute no notes
    assert notes.groupby("file_id").size().sum() == ok["n_notes"].sum()
    assert set(notes["genre"]) == {"alpha", "beta"}

    table = dataset_table(files)
    for row in table.values():
        assert row["found"] == row["files"] + row["quarantined"]
    assert table["beta"]["quarantined"] == 2 and table["alpha"]["quarantined"] == 1
    md = render_markdown(table, files)
    assert "Files found: 9 = used 6 + quarantined 3." in md
    assert "`beta/y/silent.mid` | no notes" in md


def test_parallel_ingest_matches_serial(raw):
    found = find_files(raw, SOURCES)
    serial, n1 = ingest(found, Rules(), workers=1, progress=False)
    parallel, n2 = ingest(found, Rules(), workers=2, progress=False)  # > 8 files: a pool
    pd.testing.assert_frame_equal(serial, parallel)
    pd.testing.assert_frame_equal(n1, n2)


def test_missing_source_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="run the download stage for 'alpha'"):
        find_files(tmp_path, SOURCES[:1])


def test_subset_is_seeded_and_per_genre(raw):
    found = find_files(raw, SOURCES)
    a = subset(found, 2, seed=1)
    assert a == subset(found, 2, seed=1)
    assert sorted(f.genre for f in a) == ["alpha", "alpha", "beta", "beta"]
    assert subset(found, None, seed=1) == found


@pytest.mark.parametrize(
    "scheme, rel, expected",
    [
        ("lofi", "samples/ii-V12.mid", {"label": "ii-V", "family": "ii-V"}),
        ("lofi", "samples/tree3.mid", {"label": "tree", "family": "tree"}),
        ("classical", "midis/Chopin/chpn_op10_e01.mid", {"label": "Chopin", "composer": "Chopin"}),
        ("classical", "midis/Christmas/carol.mid", {"label": "Christmas", "composer": None}),
        (
            "videogame",
            "labelled/midi/Final Fantasy_SNES_FF6_Terra_Theme.mid",
            {
                "franchise": "Final Fantasy",
                "console": "SNES",
                "game": "FF6",
                "title": "Terra_Theme",
            },
        ),
    ],
)
def test_labels(scheme, rel, expected):
    got = labels_for(scheme, rel)
    assert {k: got[k] for k in expected} == expected
