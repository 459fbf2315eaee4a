"""Fetch a pinned dataset archive over HTTP(S), extract its MIDI safely, verify every file."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import pooch
import requests

from midiml.data.archive import extract
from midiml.data.manifest import ChecksumError, load_manifest, verify_folder
from midiml.data.sources import MIRROR_ENV, Source
from midiml.io import atomic_dir, write_json

log = logging.getLogger(__name__)
pooch.get_logger().setLevel(logging.WARNING)  # its "use this known_hash" hint does not apply here

CONNECT_TIMEOUT_S = 10
READ_TIMEOUT_S = 60


class DownloadError(RuntimeError):
    """The archive could not be fetched; the message says how to get around it."""


def fetch_archive(url: str, dest_dir: Path, progress: bool = True) -> Path:
    """Download ``url`` into ``dest_dir`` (pooch writes to a temp file and renames on success)."""
    downloader = pooch.HTTPDownloader(
        progressbar=progress, timeout=(CONNECT_TIMEOUT_S, READ_TIMEOUT_S)
    )
    try:
        path = pooch.retrieve(
            url,
            known_hash=None,
            fname=url.rsplit("/", 1)[-1],
            path=dest_dir,
            downloader=downloader,
        )
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
                report = extract(
                    zip_path, staging, source.top_folder, source.include, set(expected)
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
