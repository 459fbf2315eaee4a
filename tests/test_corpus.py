"""data=corpus: scores inside music21 become MIDI files that ingest reads like any other."""

from __future__ import annotations

from midiml.data.corpus import build_corpus_source
from midiml.data.ingest import Rules, find_files, ingest
from midiml.data.sources import Source


def test_corpus_source_writes_readable_midi(tmp_path):
    src = Source(
        name="chorale",
        kind="music21",
        labels="music21",
        corpus={"composer": "bach", "extensions": [".mxl"], "limit": 2},
    )
    report = build_corpus_source(src, tmp_path / "raw" / "chorale", progress=False)
    assert report["extracted"] == 2
    files, notes = ingest(find_files(tmp_path / "raw", [src]), Rules(), workers=1, progress=False)
    assert (files["status"] == "ok").all() and len(files) == 2
    assert set(files["label"]) == {"bach"}
    assert len(notes) > 50
