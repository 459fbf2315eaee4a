"""data=corpus: scores inside music21 become MIDI files that ingest reads like any other."""

from __future__ import annotations

from pathlib import Path

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


def test_corpus_works_span_composers_and_catalogues(tmp_path):
    """A source of several composers: each gets its own folder, a limit samples the whole
    sorted catalogue (first and last score), and quartet movements of different opus numbers
    keep distinct names."""
    from midiml.data.corpus import corpus_paths, corpus_works, midi_name

    spec = {
        "works": [
            {"composer": "bach", "extensions": [".mxl"], "limit": 3},
            {"composer": "haydn", "extensions": [".mxl"], "limit": 2},
        ]
    }
    assert [w["composer"] for w in corpus_works(spec)] == ["bach", "haydn"]
    assert corpus_works({"composer": "bach", "limit": 1}) == [
        {"composer": "bach", "extensions": [".mxl"], "limit": 1}
    ]
    every = corpus_paths("bach", [".mxl"], None)
    picked = corpus_paths("bach", [".mxl"], 3)
    assert picked[0] == every[0] and picked[-1] == every[-1] and len(picked) == 3
    quartets = corpus_paths("haydn", [".mxl"], None)
    names = [midi_name(p, "haydn") for p in quartets]
    assert len(set(names)) == len(names) and all("/" not in n for n in names)
    # a folder higher up named like the composer (e.g. a checkout in ~/bach) changes nothing
    nested = Path("/home/bach/venv/music21/corpus/bach/bwv1.6.mxl")
    assert midi_name(nested, "bach") == "bwv1.6.mid"
    assert midi_name(Path("/c/beethoven/opus18no1/movement1.krn"), "beethoven") == (
        "opus18no1_movement1.mid"
    )

    src = Source(name="classical_music21", kind="music21", labels="folder", corpus=spec)
    report = build_corpus_source(src, tmp_path / "raw" / "classical_music21", progress=False)
    assert report["extracted"] + len(report["skipped"]) == 5
    written = sorted(p.parent.name for p in (tmp_path / "raw").rglob("*.mid"))
    assert written.count("bach") == 3 and set(written) == {"bach", "haydn"}
    # two processes write the same files, byte for byte, and the same report
    two = build_corpus_source(src, tmp_path / "two" / "classical_music21", False, n_jobs=2)
    assert two == report
    for path in (tmp_path / "raw").rglob("*.mid"):
        twin = tmp_path / "two" / path.relative_to(tmp_path / "raw")
        assert twin.read_bytes() == path.read_bytes()
