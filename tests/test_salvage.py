"""A damaged file keeps what it still holds, nothing invented; no archive can fill the disk.

Files are built here from mido messages encoded byte by byte (so every event's place in the
file is known), then cut, flipped and damaged; archives are built with a member far larger
than the reader's limit (a bomb), as zip and tar.gz, and also fetched over HTTP on 127.0.0.1.
"""

from __future__ import annotations

import hashlib
import io
import random
import tarfile
import zipfile
from pathlib import Path

import mido
import pytest

from midiml.data.archive import extract
from midiml.data.download import download_url_source
from midiml.data.ingest import FoundFile, ingest
from midiml.data.midi import MidiParseError, Rules, check_columns
from midiml.data.sources import Source
from midiml.evaluate.dataset_table import dataset_table
from midiml.report.dataset import render_markdown
from tests.malformed import DAMAGE_KINDS, damage, header, vlq

TPQ = 96


def encode(events: list[tuple[int, mido.Message | mido.MetaMessage]]) -> tuple[bytes, list[int]]:
    """A track body from (delta, message) pairs, and where each event ends in it."""
    body, ends = bytearray(), []
    for delta, msg in events:
        body += vlq(delta) + bytes(msg.bytes() if not msg.is_meta else msg.bin())
        ends.append(len(body))
    return bytes(body), ends


def note_track(channel: int, pitch0: int, n: int, step: int) -> list:
    """``n`` notes on ``channel``, whose program (channel * 10 + 5) tells the track's notes."""
    out: list = [(0, mido.Message("program_change", channel=channel, program=channel * 10 + 5))]
    for i in range(n):
        p = pitch0 + (i * 5) % 12
        out.append(
            (0 if i else step // 2, mido.Message("note_on", channel=channel, note=p, velocity=70))
        )
        out.append((step, mido.Message("note_off", channel=channel, note=p, velocity=0)))
    return out


def build(tracks: list[list]) -> tuple[bytes, list[dict]]:
    """A type-1 file and, per track, its events with their ticks and end offsets in the file."""
    data = bytearray(header(1, len(tracks), TPQ))
    layout = []
    for events in tracks:
        events = [*events, (0, mido.MetaMessage("end_of_track"))]
        body, ends = encode(events)
        start = len(data) + 8
        data += b"MTrk" + len(body).to_bytes(4, "big") + body
        ticks, t = [], 0
        for delta, _ in events:
            t += delta
            ticks.append(t)
        layout.append(
            {"start": start, "events": events, "ends": [start + e for e in ends], "ticks": ticks}
        )
    return bytes(data), layout


def song() -> tuple[bytes, list[dict]]:
    tempo = [
        (0, mido.MetaMessage("set_tempo", tempo=600_000)),
        (0, mido.MetaMessage("track_name", name="x")),
    ]
    return build(
        [tempo, note_track(0, 60, 6, 48), note_track(1, 48, 5, 72), note_track(2, 72, 4, 30)]
    )


def expected_notes(layout: list[dict], cut: int) -> set[tuple[int, float, float]]:
    """(pitch, onset, end) in beats of the notes whose note-on lies wholly before ``cut``: a note
    whose note-off was cut away ends at its track's last complete event."""
    out = set()
    for tr in layout:
        kept = [k for k, e in enumerate(tr["ends"]) if e <= cut and tr["start"] <= cut]
        if not kept:
            continue
        last_tick = tr["ticks"][kept[-1]]
        for k in kept:
            msg = tr["events"][k][1]
            if msg.type == "note_on" and msg.velocity:
                off = next(
                    j
                    for j in range(k + 1, len(tr["events"]))
                    if tr["events"][j][1].type == "note_off"
                )
                end = tr["ticks"][off] if off in kept else last_tick
                out.add((msg.note, tr["ticks"][k] / TPQ, end / TPQ))
    return out


def read(data: bytes, strict: bool = False, program: int | None = None) -> tuple[set, dict]:
    """(pitch, onset, end) of the notes (of one ``program``: one track here) and the summary."""
    cols, info = check_columns("song.mid", Rules(strict=strict), data)
    if program is not None:
        cols = {k: v[cols["program"] == program] for k, v in cols.items()}
    ends = cols["onset_beats"] + cols["duration_beats"]
    notes = zip(cols["pitch"].tolist(), cols["onset_beats"].tolist(), ends.tolist(), strict=True)
    return set(notes), info


def test_the_built_file_is_valid_midi_and_reads_whole():
    data, layout = song()
    assert len(mido.MidiFile(file=io.BytesIO(data)).tracks) == 4
    notes, info = read(data)
    assert notes == expected_notes(layout, len(data)) and len(notes) == 15
    assert info["salvaged"] == ""


def test_a_file_cut_at_every_byte_keeps_exactly_its_complete_events():
    data, layout = song()
    salvaged = 0
    for cut in range(len(data)):
        want = expected_notes(layout, cut)
        try:
            got, info = read(data[:cut])
        except MidiParseError as exc:  # a cut header, or nothing left: refused with the reason
            assert not want or cut < 14, (cut, exc.reason)
            assert exc.reason.startswith("unreadable MIDI: "), exc.reason
            continue
        assert got == want, cut
        assert info["salvaged"], cut
        salvaged += 1
        with pytest.raises(MidiParseError, match="truncated"):
            read(data[:cut], strict=True)
    assert salvaged > len(data) // 2


def test_a_flipped_byte_in_track_2_keeps_tracks_1_and_3_whole():
    data, layout = song()
    tr = layout[2]
    flips = 0
    for at in range(tr["start"], tr["ends"][-1]):
        for value in (0x00, 0x3C, 0x7F, 0x80, 0x92, 0xC3, 0xF8, 0xFF):
            if data[at] == value:
                continue
            damaged = bytearray(data)
            damaged[at] = value
            try:
                for program in (5, 25):  # tracks 1 and 3
                    got = read(bytes(damaged), program=program)[0]
                    assert got == read(data, program=program)[0], (at, value, program)
            except MidiParseError:
                pytest.fail(f"byte {at} = {value:#x}: the file was refused")
            flips += 1
    assert flips > 100


def test_a_data_byte_over_127_keeps_the_track_before_it_and_says_where():
    data, layout = song()
    tr = layout[2]
    at = tr["ends"][5] - 1  # the velocity of track 2's third note-off
    damaged = bytearray(data)
    damaged[at] = 0xE5
    got, info = read(bytes(damaged))
    for program in (5, 25):  # tracks 1 and 3 whole
        assert read(bytes(damaged), program=program)[0] == read(data, program=program)[0]
    kept = {(p, on) for p, on, _ in read(bytes(damaged), program=15)[0]}
    assert kept and kept < {(p, on) for p, on, _ in read(data, program=15)[0]}
    where = f"track 2 damaged at byte {tr['ends'][4]} (data byte > 127 in track 2)"
    assert info["salvaged"].startswith(where), info["salvaged"]


def test_damaged_copies_read_without_errors_and_invent_almost_nothing():
    """The benchmark's damage (tests.malformed.damage) on built files: every kind."""
    data, _ = song()
    rng = random.Random(0)
    invented = kept = gave = 0
    whole = {(p, on) for p, on, _ in read(data)[0]}
    for i in range(600):
        damaged, _ = damage(data, rng, DAMAGE_KINDS[i % len(DAMAGE_KINDS)])
        try:
            got, _ = read(damaged)
        except MidiParseError:
            continue
        gave += 1
        onsets = {(p, on) for p, on, _ in got}
        invented += len(onsets - whole)
        kept += len(onsets)
    assert gave > 0.8 * 600
    assert invented <= 0.05 * kept, (invented, kept)


# --- archives -------------------------------------------------------------------------------

BOMB = 40 * 2**20  # far past the reader's 8 MiB, still quick to compress in a test


def small_mid(n: int) -> bytes:
    data, _ = build([note_track(0, 60, n, 48)])
    return data


def bomb_members() -> dict[str, bytes]:
    return {
        "coll/a/good1.mid": small_mid(3),
        "coll/a/bomb.mid": b"MThd" + bytes(BOMB),
        "coll/b/good2.mid": small_mid(4),
        "coll/b/notes.txt": bytes(20 * 2**20),  # not MIDI: only the archive total applies
    }


def make_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def make_tgz(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def written_bytes() -> int:
    """Bytes this process has handed to write() (Linux /proc): what reached the disk's cache."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("wchar:"):
            return int(line.split()[1])
    raise AssertionError("no wchar")


@pytest.fixture(scope="module")
def bombs(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("bombs")
    members = bomb_members()
    return {
        "zip": make_zip(folder / "coll.zip", members),
        "tar.gz": make_tgz(folder / "coll.tar.gz", members),
    }


@pytest.mark.skipif(not Path("/proc/self/io").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_a_bomb_member_is_refused_and_the_rest_extracted_with_bounded_writes(bombs, tmp_path, kind):
    assert bombs[kind].stat().st_size < 2**20
    before = written_bytes()
    report = extract(bombs[kind], tmp_path / "out", "coll", ("*",))
    wrote = written_bytes() - before
    assert wrote <= 21 * 2**20, wrote  # notes.txt (20 MiB) and the small files; none of the bomb
    assert report["refused"] == [
        {"member": "coll/a/bomb.mid", "reason": "too large: over 8 MiB decompressed"}
    ]
    assert sorted(p.name for p in (tmp_path / "out").rglob("*") if p.is_file()) == [
        "good1.mid",
        "good2.mid",
        "notes.txt",
    ]
    assert report["extracted"] == 3


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_the_archive_total_is_a_limit_too_and_extraction_goes_on(bombs, tmp_path, kind):
    report = extract(bombs[kind], tmp_path / "out", "coll", ("*",), max_total_bytes=2**20)
    refused = {r["member"]: r["reason"] for r in report["refused"]}
    assert refused == {
        "coll/a/bomb.mid": "archive total over 1 MiB decompressed",
        "coll/b/notes.txt": "archive total over 1 MiB decompressed",
    }
    assert report["extracted"] == 2 and report["bytes_written"] < 2**20
    assert not (tmp_path / "out" / "a" / "bomb.mid").exists()


def test_a_bomb_through_a_url_source_is_refused_by_name(bombs, http_dir, tmp_path):
    base, root = http_dir
    (root / "coll.zip").write_bytes(bombs["zip"].read_bytes())
    sha = hashlib.sha256(bombs["zip"].read_bytes()).hexdigest()
    src = Source.from_config(
        "web", {"kind": "url", "url": f"{base}/coll.zip", "sha256": sha, "top": "coll"}
    )
    report = download_url_source(src, tmp_path / "raw" / "web", progress=False)
    assert [r["member"] for r in report["refused"]] == ["coll/a/bomb.mid"]
    assert report["extracted"] == 2  # the two MIDI files (notes.txt is not MIDI)
    assert sorted(p.name for p in (tmp_path / "raw" / "web").rglob("*.mid")) == [
        "good1.mid",
        "good2.mid",
    ]


def test_ingest_uses_a_damaged_file_and_lists_what_it_lost(tmp_path):
    """found = used + quarantined; a salvaged file is used, counted and listed."""
    data, _ = song()
    folder = tmp_path / "raw" / "mine" / "low"
    folder.mkdir(parents=True)
    (folder / "whole.mid").write_bytes(data)
    (folder / "cut.mid").write_bytes(data[: len(data) - 20])
    (folder / "garbage.mid").write_bytes(b"MThd" + bytes(30))
    found = [FoundFile(p, f"mine/low/{p.name}", "low", p.name, "none") for p in folder.iterdir()]
    files, notes = ingest(found, Rules(), workers=1, progress=False)
    row = files.set_index("file_id")
    assert row.loc["mine/low/cut.mid", "status"] == "ok"
    assert row.loc["mine/low/cut.mid", "salvaged"].startswith("track 3 cut short")
    assert row.loc["mine/low/whole.mid", "salvaged"] == ""
    assert row.loc["mine/low/garbage.mid", "status"] == "quarantined"
    assert set(notes["file_id"]) == {"mine/low/whole.mid", "mine/low/cut.mid"}
    table = dataset_table(files)
    assert table["low"]["found"] == table["low"]["files"] + table["low"]["quarantined"] == 3
    md = render_markdown(table, files)
    assert "Files found: 3 = used 2 + quarantined 1. Damaged but used (salvaged" in md
    assert f"| `mine/low/cut.mid` | {row.loc['mine/low/cut.mid', 'salvaged']} |" in md
    strict, _ = ingest(found, Rules(strict=True), workers=1, progress=False)
    assert (strict["status"] == "quarantined").sum() == 2
