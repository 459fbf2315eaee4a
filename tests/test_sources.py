"""A user's own collection: folder and URL sources, labels from a CSV, any number of genres."""

from __future__ import annotations

import hashlib
import io
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from midiml.classify.pipelines import build_task, searched_feature_model
from midiml.data.download import SourceError, copy_folder_source, download_url_source
from midiml.data.ingest import Rules, find_files, ingest, ingest_to_parquet
from midiml.data.labels import LabelsCsvError
from midiml.data.manifest import ChecksumError
from midiml.data.sources import Source
from midiml.data.split import split_songs
from midiml.represent.features import extract_features, extract_features_streamed
from midiml.represent.windows import EventData, build_event_data, save_event_data_streamed
from tests.test_classifiers import CFG

GENRES3 = ["jazz", "piano", "chiptune"]


def write_collection(root: Path, midi_writer, genres: list[str], per_genre: int = 6) -> Path:
    """``per_genre`` small songs per genre sub-folder (some one level deeper); genres differ
    in register so a classifier has something to learn."""
    for g, genre in enumerate(genres):
        for i in range(per_genre):
            sub = root / genre / ("deeper" if i % 2 else "")
            base = 36 + 12 * g
            notes = [(base + (i + k) % 7, k * 0.5, 0.5) for k in range(8 + i)]
            midi_writer(sub / f"song{i}.mid", notes, tempo=400_000 + 50_000 * g)
    return root


def folder_source(path: Path, **kw) -> Source:
    return Source.from_config("mine", {"kind": "folder", "path": str(path), **kw})


def test_folder_source_genres_from_sub_folders_and_bad_files_quarantined(tmp_path, midi_writer):
    user = write_collection(tmp_path / "user", midi_writer, GENRES3, per_genre=3)
    (user / "piano" / "broken.mid").write_bytes(b"MThd\x00\x00\x00\x06garbage")
    (user / "chiptune" / "empty.MID").write_bytes(b"")
    (user / "jazz" / "notes.txt").write_text("not midi")
    midi_writer(user / "loose.mid")  # no genre sub-folder: left out with a warning
    src = folder_source(user)
    report = copy_folder_source(src, tmp_path / "raw" / "mine")
    assert report["extracted"] == 3 * 3 + 2 + 1
    found = find_files(tmp_path / "raw", [src])
    assert {f.genre for f in found} == set(GENRES3)
    assert "mine/loose.mid" not in {f.file_id for f in found}
    files, notes = ingest(found, Rules(), workers=1, progress=False)
    reason = dict(zip(files["file_id"], files["reason"], strict=True))
    assert reason["mine/piano/broken.mid"].startswith("unreadable MIDI")
    assert reason["mine/chiptune/empty.MID"].startswith("unreadable MIDI")
    assert (files["status"] == "ok").sum() == 9
    assert set(notes["genre"]) == set(GENRES3)


def test_folder_source_fixed_genre_and_clear_errors(tmp_path, midi_writer):
    user = write_collection(tmp_path / "user", midi_writer, ["a"], per_genre=2)
    midi_writer(user / "top.mid")
    src = folder_source(user, genre="mine_all")
    copy_folder_source(src, tmp_path / "raw" / "mine")
    assert {f.genre for f in find_files(tmp_path / "raw", [src])} == {"mine_all"}
    with pytest.raises(SourceError, match=r"data\.sources\.mine\.path is not set"):
        copy_folder_source(Source.from_config("mine", {"kind": "folder"}), tmp_path / "x")
    with pytest.raises(SourceError, match="nowhere: no such folder"):
        copy_folder_source(folder_source(tmp_path / "nowhere"), tmp_path / "x")


def test_labels_from_csv(tmp_path, midi_writer):
    user = write_collection(tmp_path / "user", midi_writer, ["piano", "jazz"], per_genre=2)
    (user / "labels.csv").write_text(
        "path,composer,title\npiano/song0.mid,Chopin,Nocturne\npiano/deeper/song1.mid,Liszt,\n"
    )
    src = folder_source(user, labels_csv="labels.csv")
    copy_folder_source(src, tmp_path / "raw" / "mine")
    files, _ = ingest(find_files(tmp_path / "raw", [src]), Rules(), workers=1, progress=False)
    by_id = files.set_index("file_id")
    assert by_id.loc["mine/piano/song0.mid", "composer"] == "Chopin"
    assert by_id.loc["mine/piano/song0.mid", "title"] == "Nocturne"
    assert by_id.loc["mine/piano/deeper/song1.mid", "composer"] == "Liszt"
    assert pd.isna(by_id.loc["mine/piano/deeper/song1.mid", "title"])  # empty cell = unknown
    assert by_id.loc[by_id["genre"] == "jazz", "composer"].isna().all()

    (tmp_path / "raw" / "mine" / "_labels.csv").write_text("file,composer\nx.mid,Bach\n")
    with pytest.raises(LabelsCsvError, match="_labels.csv: no 'path' column"):
        find_files(tmp_path / "raw", [src])


def test_versions_of_a_piece_are_one_piece_and_share_a_split(tmp_path, midi_writer):
    """A dataset's table of versions (GiantMIDI's performance / transcription / score of
    one piece): the files it names get the piece; the split keeps them together."""
    root = tmp_path / "raw" / "mine"
    for folder in ("performed", "scores"):
        for i in range(6):
            midi_writer(root / folder / f"{folder}_{i}.mid", [(60 + i, 0, 1), (64, 1, 1)])
    (root / "versions.csv").write_text(
        "Name\tPerformed\tScore\n"
        + "".join(f"Piece {i}, No. {i}\tperformed_{i}.mid\tscores_{i}.mid\n" for i in range(5))
    )
    src = Source.from_config("mine", {"kind": "folder", "genre": "g", "versions": "versions.csv"})
    files, _ = ingest(find_files(tmp_path / "raw", [src]), Rules(), workers=1, progress=False)
    piece = files.set_index("file_id")["piece"]
    assert piece["mine/performed/performed_2.mid"] == piece["mine/scores/scores_2.mid"]
    assert piece["mine/scores/scores_2.mid"] == "mine/Piece 2, No. 2"
    assert pd.isna(piece["mine/scores/scores_5.mid"])  # not in the table: a piece of its own
    split = split_songs(files, val=0.2, test=0.2, seed=0).set_index("file_id")["split"]
    for i in range(5):
        assert split[f"mine/performed/performed_{i}.mid"] == split[f"mine/scores/scores_{i}.mid"]
    assert split.nunique() == 3

    bad = Source.from_config("mine", {"kind": "folder", "genre": "g", "versions": "nope.csv"})
    with pytest.raises(LabelsCsvError, match=r"nope\.csv: no such table of versions"):
        find_files(tmp_path / "raw", [bad])


def _zip_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _midi_bytes(tmp_path: Path, midi_writer, name: str) -> bytes:
    return midi_writer(tmp_path / "src" / name).read_bytes()


def test_url_source_zip_verified_and_wrong_sha256_stops_with_the_file_name(
    http_dir, tmp_path, midi_writer
):
    base, served = http_dir
    song = _midi_bytes(tmp_path, midi_writer, "s.mid")
    data = _zip_bytes(
        {
            "coll/rock/a.mid": song,
            "coll/folk/deeper/b.MIDI": song,
            "coll/folk/cover.jpg": b"jpg",
            "coll/labels.csv": b"path,composer\nrock/a.mid,Someone\n",
            "coll/../../evil.mid": b"pwned",
        }
    )
    (served / "coll.zip").write_bytes(data)
    good = hashlib.sha256(data).hexdigest()
    cfg = {"kind": "url", "url": f"{base}/coll.zip", "top": "coll", "labels_csv": "labels.csv"}
    src = Source.from_config("web", {**cfg, "sha256": good})
    report = download_url_source(src, tmp_path / "raw" / "web", progress=False)
    assert report["extracted"] == 2
    assert [r["member"] for r in report["refused"]] == ["coll/../../evil.mid"]
    assert not any(p.name == "evil.mid" for p in tmp_path.rglob("*"))
    files, _ = ingest(find_files(tmp_path / "raw", [src]), Rules(), workers=1, progress=False)
    assert set(files["genre"]) == {"rock", "folk"}
    assert files.set_index("genre").loc["rock", "composer"] == "Someone"
    assert pd.isna(files.set_index("genre").loc["folk", "composer"])

    bad = Source.from_config("web", {**cfg, "sha256": "0" * 64})
    target = tmp_path / "raw2" / "web"
    with pytest.raises(ChecksumError) as err:
        download_url_source(bad, target, progress=False)
    message = str(err.value)
    assert "coll.zip: sha256 mismatch" in message and good in message
    assert "\n" not in message
    assert not target.exists()

    with pytest.raises(SourceError, match="sha256 must be"):
        download_url_source(Source.from_config("web", cfg), target, progress=False)


def test_url_source_tar_refuses_links(http_dir, tmp_path, midi_writer):
    base, served = http_dir
    song = _midi_bytes(tmp_path, midi_writer, "s.mid")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name in ("a/x.mid", "b/y.mid"):
            info = tarfile.TarInfo(name)
            info.size = len(song)
            tf.addfile(info, io.BytesIO(song))
        link = tarfile.TarInfo("a/link.mid")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tf.addfile(link)
    (served / "c.tar.gz").write_bytes(buf.getvalue())
    sha = hashlib.sha256(buf.getvalue()).hexdigest()
    src = Source.from_config("web", {"kind": "url", "url": f"{base}/c.tar.gz", "sha256": sha})
    report = download_url_source(src, tmp_path / "raw" / "web", progress=False)
    assert report["extracted"] == 2
    assert report["refused"] == [{"member": "a/link.mid", "reason": "link or special file"}]
    assert {f.genre for f in find_files(tmp_path / "raw", [src])} == {"a", "b"}


@pytest.mark.parametrize("genres", [["one", "two"], ["g1", "g2", "g3", "g4", "g5"]])
def test_any_number_of_genres_through_ingest_split_features_and_a_classifier(
    tmp_path, midi_writer, genres
):
    user = write_collection(tmp_path / "user", midi_writer, genres, per_genre=8)
    src = folder_source(user)
    copy_folder_source(src, tmp_path / "raw" / "mine")
    found = find_files(tmp_path / "raw", [src])
    files, n_notes = ingest_to_parquet(
        found, Rules(), tmp_path / "notes.parquet", workers=1, progress=False
    )
    notes = pd.read_parquet(tmp_path / "notes.parquet")
    assert len(notes) == n_notes and set(notes["genre"]) == set(genres)
    splits = split_songs(files, 0.15, 0.25, seed=0)
    assert set(splits["genre"]) == set(genres)
    table = extract_features(notes, files)
    assert len(table) == len(genres) * 8
    task = build_task("genre", files, splits, CFG)
    assert task.genres == sorted(genres)
    fitted = searched_feature_model(task, "logreg", table, CFG, seed=0)[0]
    assert set(fitted.classes) == set(genres)


def test_streamed_ingest_matches_in_memory_and_parallel_matches_serial(tmp_path, midi_writer):
    user = write_collection(tmp_path / "user", midi_writer, GENRES3, per_genre=5)
    (user / "jazz" / "bad.mid").write_bytes(b"nope")
    src = folder_source(user)
    copy_folder_source(src, tmp_path / "raw" / "mine")
    found = find_files(tmp_path / "raw", [src])
    files_mem, notes_mem = ingest(found, Rules(), workers=1, progress=False)
    serial = ingest_to_parquet(
        found, Rules(), tmp_path / "s.parquet", workers=1, progress=False, batch_rows=20
    )
    parallel = ingest_to_parquet(
        found, Rules(), tmp_path / "p.parquet", workers=2, progress=False, batch_rows=20
    )
    pd.testing.assert_frame_equal(serial[0], parallel[0])
    pd.testing.assert_frame_equal(serial[0], files_mem)
    assert pq.read_table(tmp_path / "s.parquet").equals(pq.read_table(tmp_path / "p.parquet"))
    assert pq.ParquetFile(tmp_path / "s.parquet").num_row_groups > 1  # streamed in batches
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "s.parquet"), notes_mem)

    # features and windows stream the row groups and give what the whole table gives
    whole = extract_features(notes_mem, files_mem)
    pd.testing.assert_frame_equal(
        extract_features_streamed(tmp_path / "s.parquet", files_mem), whole
    )
    splits = split_songs(files_mem, 0.2, 0.2, seed=0)
    a = build_event_data(notes_mem, splits, 4, 1, {"val": 3})
    save_event_data_streamed(tmp_path / "s.parquet", splits, 4, 1, {"val": 3}, tmp_path / "w.npz")
    b = EventData.load(tmp_path / "w.npz")
    assert np.array_equal(a.events, b.events) and np.array_equal(a.file_ids, b.file_ids)
    assert all(np.array_equal(a.starts[k], b.starts[k]) for k in a.starts)
