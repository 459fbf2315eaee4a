"""Get a source's MIDI files into ``data/raw/<source>``: a pinned GitHub archive (every file
checked against a committed manifest), any zip/tar archive at a URL (checked against its
sha256), or a copy of a local folder."""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
from fnmatch import fnmatchcase
from pathlib import Path, PurePosixPath

import pooch
import requests

from midiml.data.archive import MAX_ARCHIVE_BYTES, extract
from midiml.data.corpus import build_corpus_source
from midiml.data.manifest import ChecksumError, load_manifest, verify_folder
from midiml.data.sources import LABELS_CSV_NAME, MIDI_SUFFIXES, MIRROR_ENV, Source
from midiml.data.synthetic import write_synthetic
from midiml.io import atomic_dir, write_json

log = logging.getLogger(__name__)
pooch.get_logger().setLevel(logging.WARNING)  # its "use this known_hash" hint does not apply here

CONNECT_TIMEOUT_S = 10
READ_TIMEOUT_S = 60


class DownloadError(RuntimeError):
    """The archive could not be fetched; the message says how to get around it."""


class SourceError(ValueError):
    """A source's settings cannot work (missing folder, no checksum...); one line says why."""


def archive_file_name(url: str) -> str:
    return url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1] or "archive"


def fetch_archive(
    url: str, dest_dir: Path, progress: bool = True, sha256: str | None = None
) -> Path:
    """Download ``url`` into ``dest_dir`` (pooch writes to a temp file and renames on success);
    with ``sha256``, pooch verifies the download and a mismatch raises ChecksumError."""
    downloader = pooch.HTTPDownloader(
        progressbar=progress, timeout=(CONNECT_TIMEOUT_S, READ_TIMEOUT_S)
    )
    fname = archive_file_name(url)
    try:
        path = pooch.retrieve(
            url,
            known_hash=f"sha256:{sha256}" if sha256 else None,
            fname=fname,
            path=dest_dir,
            downloader=downloader,
        )
    except ValueError as exc:  # pooch: "SHA256 hash of downloaded file (...) does not match"
        if "does not match" not in str(exc):
            raise
        got = re.search(r"but got ([0-9a-f]{64})", str(exc))
        raise ChecksumError(
            f"{fname}: sha256 mismatch (expected {sha256}, downloaded "
            f"{got.group(1) if got else 'something else'}) from {url}"
        ) from None
    except (requests.RequestException, OSError) as exc:
        raise DownloadError(
            f"could not download {url}: {type(exc).__name__}: {exc}\n"
            f"Ways out: serve the offline mirror and set {MIRROR_ENV} "
            f"(e.g. {MIRROR_ENV}=http://127.0.0.1:8765 dvc repro), "
            "or run without network on the music21 corpus: dvc exp run -S data=corpus "
            "(make demo)."
        ) from exc
    return Path(path)


def download_source(
    source: Source,
    target: str | Path,
    progress: bool = True,
    expected: dict[str, str] | None = None,
    max_archive_bytes: int = MAX_ARCHIVE_BYTES,
) -> dict:
    """Fetch ``source``'s archive and leave its verified dataset files in ``target``.

    ``target`` appears only when everything succeeded: extraction happens in a
    temporary sibling folder that is swapped in at the end. ``expected`` (path ->
    sha256) defaults to the committed manifest of the source.
    """
    target = Path(target)
    url = source.url()
    expected = expected if expected is not None else load_manifest(source.manifest_path)
    with tempfile.TemporaryDirectory(prefix="midiml-dl-") as tmp:
        log.info("downloading %s", url)
        zip_path = fetch_archive(url, Path(tmp), progress=progress)
        with atomic_dir(target) as staging:
            try:
                wanted = set(expected)  # a real GitHub archive holds the whole tree
                report = extract(
                    zip_path,
                    staging,
                    source.top_folder,
                    source.include,
                    wanted.__contains__,
                    max_archive_bytes,
                )
            except Exception as exc:  # zipfile.BadZipFile, truncated members, ...
                raise DownloadError(f"{url}: archive is unreadable: {exc}") from exc
            try:
                verify_folder(staging, expected)
            except ChecksumError as exc:
                raise ChecksumError(f"{source.name} ({url}): {exc}") from exc
            report.update(source=source.name, url_name=source.archive_name, files=len(expected))
            write_json(staging / "_download.json", report)
    return report


def is_midi(rel: str) -> bool:
    return PurePosixPath(rel).suffix.lower() in MIDI_SUFFIXES


def download_url_source(
    source: Source,
    target: str | Path,
    progress: bool = True,
    max_archive_bytes: int = MAX_ARCHIVE_BYTES,
) -> dict:
    """Fetch any zip/tar archive, check its sha256, extract its MIDI files (and labels CSV)."""
    if not source.archive_url:
        raise SourceError(f"data.sources.{source.name}.url is not set")
    if not re.fullmatch(r"[0-9a-f]{64}", source.sha256):
        raise SourceError(
            f"data.sources.{source.name}.sha256 must be the archive's 64-hex-digit sha256 "
            f"(got {source.sha256!r}); compute it with `sha256sum <archive>`"
        )
    target = Path(target)
    csv_rel = PurePosixPath(source.labels_csv).as_posix() if source.labels_csv else None

    def accept(rel: str) -> bool:
        return is_midi(rel) or rel == csv_rel

    with tempfile.TemporaryDirectory(prefix="midiml-dl-") as tmp:
        log.info("downloading %s", source.archive_url)
        archive = fetch_archive(source.archive_url, Path(tmp), progress, sha256=source.sha256)
        with atomic_dir(target) as staging:
            try:
                report = extract(
                    archive, staging, source.top, source.include, accept, max_archive_bytes
                )
            except (OSError, EOFError, ValueError, RuntimeError) as exc:
                raise DownloadError(f"{archive.name}: archive is unreadable: {exc}") from exc
            if csv_rel:
                csv = staging / csv_rel
                if not csv.is_file():
                    raise SourceError(f"{archive.name}: no labels CSV {csv_rel!r} inside")
                shutil.move(csv, staging / LABELS_CSV_NAME)
                report["extracted"] -= 1
            report.update(source=source.name, url_name=archive.name, sha256=source.sha256)
            write_json(staging / "_download.json", report)
    return report


def copy_folder_source(source: Source, target: str | Path) -> dict:
    """Copy the MIDI files below the user's folder (keeping sub-folders) and its labels CSV.

    A copy, not a link: DVC then versions exactly what the pipeline read.
    """
    if not source.path:
        raise SourceError(
            f"data.sources.{source.name}.path is not set: "
            f"dvc exp run -S data=folder -S data.sources.{source.name}.path=/your/folder"
        )
    root = Path(source.path).expanduser()
    if not root.is_dir():
        raise SourceError(f"{root}: no such folder (data.sources.{source.name}.path)")
    csv = None
    if source.labels_csv:
        csv = Path(source.labels_csv).expanduser()
        csv = csv if csv.is_absolute() else root / csv
        if not csv.is_file():
            raise SourceError(f"{csv}: no such labels CSV (data.sources.{source.name}.labels_csv)")
    n = 0
    with atomic_dir(target) as staging:
        for p in sorted(root.rglob("*")):
            rel = p.relative_to(root).as_posix()
            if not (p.is_file() and is_midi(rel)):
                continue
            if not any(fnmatchcase(rel, pat) for pat in source.include):
                continue
            dest = staging / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(p, dest)
            n += 1
        if csv is not None:
            shutil.copyfile(csv, staging / LABELS_CSV_NAME)
        report = {"source": source.name, "folder": str(root), "extracted": n, "refused": []}
        write_json(staging / "_download.json", report)
    return report


def get_source(
    source: Source,
    target: str | Path,
    progress: bool = True,
    max_archive_bytes: int = MAX_ARCHIVE_BYTES,
    n_jobs: int = 1,
) -> dict:
    """Any kind of source into ``target``: downloaded (an archive writes at most
    ``max_archive_bytes``, ``data.max_archive_bytes``), copied, rendered from music21's corpus
    (``n_jobs`` scores at a time) or written by its generator (synthetic). The download
    stage's one path, for training and check sources alike."""
    if source.kind == "folder":
        return copy_folder_source(source, target)
    if source.kind == "url":
        return download_url_source(source, target, progress, max_archive_bytes)
    if source.kind == "github":
        return download_source(source, target, progress, max_archive_bytes=max_archive_bytes)
    if source.kind == "music21":
        return build_corpus_source(source, target, progress, n_jobs=n_jobs)
    if source.kind == "synthetic":
        return {"extracted": len(write_synthetic(source, target)), "refused": []}
    raise SourceError(f"data.sources.{source.name}.kind: unknown kind {source.kind!r}")
