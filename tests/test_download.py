"""Download stage: real HTTP on loopback, safe extraction, per-file checksums, clear errors."""

from __future__ import annotations

import hashlib
import socket
import time
import zipfile
from pathlib import Path

import pytest

from midiml.data.archive import extract, unsafe_reason
from midiml.data.download import DownloadError, download_source
from midiml.data.manifest import ChecksumError, load_manifest, manifest_from_zip
from midiml.data.sources import MIRROR_ENV, Source

SOURCE = Source(
    name="toy",
    kind="github",
    repo="someone/toy",
    commit="abc123",
    include=("songs/*.mid",),
    labels="music21",
)
TOP = SOURCE.top_folder


def make_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


MEMBERS = {
    f"{TOP}/songs/a.mid": b"MThd-a",
    f"{TOP}/songs/b.mid": b"MThd-b",
    f"{TOP}/README.md": b"not a dataset file",
}
EXPECTED = {"songs/a.mid": sha(b"MThd-a"), "songs/b.mid": sha(b"MThd-b")}


@pytest.fixture
def served(http_dir, monkeypatch):
    base, root = http_dir
    monkeypatch.setenv(MIRROR_ENV, base)
    return base, root


def test_url_uses_mirror_when_set(monkeypatch):
    monkeypatch.delenv(MIRROR_ENV, raising=False)
    assert SOURCE.url() == "https://github.com/someone/toy/archive/abc123.zip"
    monkeypatch.setenv(MIRROR_ENV, "http://127.0.0.1:1/")
    assert SOURCE.url() == "http://127.0.0.1:1/toy-abc123.zip"


def test_download_extracts_only_dataset_files_and_verifies(served, tmp_path):
    _, root = served
    make_zip(root / SOURCE.archive_name, MEMBERS)
    target = tmp_path / "raw" / "toy"
    report = download_source(SOURCE, target, progress=False, expected=EXPECTED)
    assert report["extracted"] == 2 and report["refused"] == []
    assert sorted(p.name for p in (target / "songs").iterdir()) == ["a.mid", "b.mid"]
    assert not (target / "README.md").exists()


def test_checksum_mismatch_names_the_file_and_leaves_no_output(served, tmp_path):
    _, root = served
    make_zip(root / SOURCE.archive_name, {**MEMBERS, f"{TOP}/songs/b.mid": b"tampered"})
    target = tmp_path / "raw" / "toy"
    with pytest.raises(ChecksumError, match=r"checksum mismatch for 'songs/b\.mid'"):
        download_source(SOURCE, target, progress=False, expected=EXPECTED)
    assert not target.exists()
    assert list(target.parent.iterdir()) == []  # no half-extracted staging folder either


def test_archive_member_outside_the_manifest_is_left_out(served, tmp_path):
    """A real GitHub archive holds the whole tree; the source is the manifest's files only."""
    _, root = served
    make_zip(root / SOURCE.archive_name, {**MEMBERS, f"{TOP}/songs/extra.mid": b"x"})
    report = download_source(SOURCE, tmp_path / "t", progress=False, expected=EXPECTED)
    assert report["extracted"] == len(EXPECTED)
    assert not (tmp_path / "t" / "songs" / "extra.mid").exists()


def test_member_escaping_target_is_refused_and_the_rest_extracted(served, tmp_path):
    _, root = served
    evil = f"{TOP}/songs/../../../evil.mid"
    make_zip(root / SOURCE.archive_name, {**MEMBERS, evil: b"pwned"})
    target = tmp_path / "deep" / "raw" / "toy"
    report = download_source(SOURCE, target, progress=False, expected=EXPECTED)
    assert report["extracted"] == 2
    reason = "path escapes the target folder ('..')"
    assert report["refused"] == [{"member": evil, "reason": reason}]
    assert not any(p.name == "evil.mid" for p in tmp_path.rglob("*"))


@pytest.mark.parametrize(
    "name, reason",
    [
        ("/etc/passwd", "absolute path"),
        ("C:/x.mid", "absolute path"),
        ("top/../x.mid", "path escapes the target folder ('..')"),
        ("other/x.mid", "outside the archive's top folder 'top'"),
        ("top/a/b.mid", None),
    ],
)
def test_unsafe_reason(name, reason):
    assert unsafe_reason(name, "top") == reason


def test_symlink_member_is_refused(tmp_path):
    zpath = tmp_path / "l.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        info = zipfile.ZipInfo(f"{TOP}/songs/link.mid")
        info.external_attr = 0o120777 << 16
        zf.writestr(info, "/etc/passwd")
    report = extract(zpath, tmp_path / "out", TOP, SOURCE.include)
    assert report["extracted"] == 0 and report["refused"][0]["reason"] == "symbolic link"


def test_interrupted_download_fails_cleanly(http_dir, monkeypatch, tmp_path):
    base, _ = http_dir
    monkeypatch.setenv(MIRROR_ENV, f"{base}/truncated")
    target = tmp_path / "raw" / "toy"
    with pytest.raises(DownloadError, match=r"could not download http://127\.0\.0\.1:\d+/trunc"):
        download_source(SOURCE, target, progress=False, expected=EXPECTED)
    assert not target.exists()


def test_corrupt_archive_is_a_clear_error(served, tmp_path):
    _, root = served
    (root / SOURCE.archive_name).write_bytes(b"this is not a zip file")
    with pytest.raises(DownloadError, match="archive is unreadable"):
        download_source(SOURCE, tmp_path / "t", progress=False, expected=EXPECTED)
    assert not (tmp_path / "t").exists()


def test_unreachable_network_fails_fast_with_the_ways_out(monkeypatch, tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv(MIRROR_ENV, f"http://127.0.0.1:{port}")
    start = time.monotonic()
    with pytest.raises(DownloadError) as err:
        download_source(SOURCE, tmp_path / "t", progress=False, expected=EXPECTED)
    assert time.monotonic() - start < 30
    msg = str(err.value)
    assert f"http://127.0.0.1:{port}/toy-abc123.zip" in msg
    assert MIRROR_ENV in msg and "data=corpus" in msg


def test_committed_manifests_match_the_mirror(mirror):
    """The pinned archives hold exactly the files (and bytes) our manifests list."""
    from midiml.config import compose_defaults

    sources = compose_defaults()["data"]["sources"]
    counts = {}
    for name, cfg in sources.items():
        src = Source.from_config(name, cfg)
        if src.kind == "music21":  # written from the installed music21, not downloaded
            continue
        files = manifest_from_zip(mirror / src.archive_name, src.top_folder, src.include)
        assert files == load_manifest(src.manifest_path), name
        counts[name] = len(files)
    assert counts == {
        "lofi": 119,
        "classical": 337,
        "videogame": 204,
        "classical_giantmidi": 127 + 1,  # and its table of versions
        "classical_whowrotethatsong": 1596,
        "videogame_koji": 830,
        "videogame_pokemon": 188,
        "videogame_vgmidi_unlabelled": 476,
    }
