"""Safe extraction of dataset archives (zip, tar): no member may land outside the target folder,
and none can fill the disk.

Every member is read through a limit counted on the bytes actually decompressed (an archive's
declared sizes may lie): a MIDI member past the reader's own size limit
(:data:`midiml.data.midi.MAX_FILE_BYTES`), or any member past what is left of the archive's
total (``max_total_bytes``, the config's ``data.max_archive_bytes``), is refused with its
reason, and extraction goes on with the next member. A MIDI member is held in memory until it
is known to fit (a bomb writes nothing); a bigger member streams and is removed when too big.
"""

from __future__ import annotations

import logging
import stat
import tarfile
import zipfile
from collections.abc import Callable, Iterator
from fnmatch import fnmatchcase
from pathlib import Path, PurePosixPath

from midiml.data.midi import MAX_FILE_BYTES
from midiml.data.sources import MIDI_SUFFIXES

log = logging.getLogger(__name__)

MAX_ARCHIVE_BYTES = 2 * 1024**3  # conf/data's max_archive_bytes: what one archive may write
_BLOCK = 1 << 20


def unsafe_reason(name: str, top: str) -> str | None:
    """Why an archive member must not be extracted, or None when it is safe."""
    p = PurePosixPath(name.replace("\\", "/"))
    if p.is_absolute() or (p.parts and ":" in p.parts[0]):
        return "absolute path"
    if ".." in p.parts:
        return "path escapes the target folder ('..')"
    top_parts = PurePosixPath(top).parts if top else ()
    if not p.parts or tuple(p.parts[: len(top_parts)]) != top_parts:
        return f"outside the archive's top folder {top!r}"
    return None


def _relative(name: str, top: str) -> str:
    p = PurePosixPath(name.replace("\\", "/"))
    return (p.relative_to(top) if top else p).as_posix()


def _is_symlink(info: zipfile.ZipInfo) -> bool:
    return stat.S_ISLNK(info.external_attr >> 16)


def dataset_members(
    zf: zipfile.ZipFile, top: str, include: tuple[str, ...], refused: list[dict] | None = None
) -> Iterator[tuple[zipfile.ZipInfo, str]]:
    """Yield (member, path relative to the top folder) for safe members matching ``include``.

    Unsafe members are never yielded; they are appended to ``refused`` with a reason.
    """
    for info in zf.infolist():
        if info.is_dir():
            continue
        reason = unsafe_reason(info.filename, top)
        if reason is None and _is_symlink(info):
            reason = "symbolic link"
        if reason is not None:
            log.warning("refused archive member %r: %s", info.filename, reason)
            if refused is not None:
                refused.append({"member": info.filename, "reason": reason})
            continue
        rel = _relative(info.filename, top)
        if any(fnmatchcase(rel, pat) for pat in include):
            yield info, rel


Accept = Callable[[str], bool]


def extract(
    archive_path: str | Path,
    target: str | Path,
    top: str,
    include: tuple[str, ...],
    accept: Accept | None = None,
    max_total_bytes: int = MAX_ARCHIVE_BYTES,
) -> dict:
    """Extract matching members below ``target``; return counts, refused members and the bytes
    written.

    ``top`` is the folder inside the archive that holds the dataset ("" = the whole archive);
    ``accept(rel)``, when given, also has to say yes. Zip and tar (any compression) archives.
    """
    target = Path(target).resolve()
    refused: list[dict] = []
    if zipfile.is_zipfile(archive_path):
        with zipfile.ZipFile(archive_path) as zf:
            members = (
                (info.filename, rel, lambda info=info: zf.open(info))
                for info, rel in dataset_members(zf, top, include, refused)
            )
            n, written = _write_members(members, target, refused, accept, max_total_bytes)
    elif tarfile.is_tarfile(archive_path):
        with tarfile.open(archive_path) as tf:
            members = (
                (m.name, rel, lambda m=m: tf.extractfile(m))
                for m, rel in tar_members(tf, top, include, refused)
            )
            n, written = _write_members(members, target, refused, accept, max_total_bytes)
    else:
        raise ValueError(f"{Path(archive_path).name}: neither a zip nor a tar archive")
    return {"extracted": n, "refused": refused, "bytes_written": written}


def tar_members(
    tf: tarfile.TarFile, top: str, include: tuple[str, ...], refused: list[dict]
) -> Iterator[tuple[tarfile.TarInfo, str]]:
    """Like ``dataset_members`` for tar: only regular files (no links, devices, fifos)."""
    for m in tf:
        if m.isdir():
            continue
        reason = unsafe_reason(m.name, top)
        if reason is None and not m.isfile():
            reason = "link or special file" if (m.issym() or m.islnk()) else "not a regular file"
        if reason is not None:
            log.warning("refused archive member %r: %s", m.name, reason)
            refused.append({"member": m.name, "reason": reason})
            continue
        rel = _relative(m.name, top)
        if any(fnmatchcase(rel, pat) for pat in include):
            yield m, rel


def _refuse(refused: list[dict], name: str, reason: str) -> None:
    log.warning("refused archive member %r: %s", name, reason)
    refused.append({"member": name, "reason": reason})


def _write_members(
    members, target: Path, refused: list[dict], accept: Accept | None, max_total_bytes: int
) -> tuple[int, int]:
    """Write each member through its limits; return (members written, bytes written)."""
    n = total = 0
    for name, rel, open_member in members:
        if accept is not None and not accept(rel):
            continue
        dest = (target / rel).resolve()
        if not dest.is_relative_to(target):  # belt and braces after unsafe_reason
            refused.append({"member": name, "reason": "resolves outside target"})
            continue
        is_midi = PurePosixPath(rel).suffix.lower() in MIDI_SUFFIXES
        limit = min(MAX_FILE_BYTES if is_midi else max_total_bytes, max_total_bytes - total)
        size = 0
        with open_member() as src:
            if limit <= MAX_FILE_BYTES:  # held in memory: a member past its limit writes nothing
                data = bytearray()
                while len(data) <= limit and (block := src.read(min(_BLOCK, limit - size + 1))):
                    data += block
                    size = len(data)
                if size <= limit:
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    dest.write_bytes(data)
            else:  # big non-MIDI members stream, never more than ``limit`` bytes on disk
                dest.parent.mkdir(parents=True, exist_ok=True)
                with open(dest, "wb") as out:
                    while block := src.read(min(_BLOCK, limit - size + 1)):
                        size += len(block)
                        if size > limit:
                            break
                        out.write(block)
                if size > limit:
                    dest.unlink()
        if size > limit:
            if is_midi and limit == MAX_FILE_BYTES:
                why = f"too large: over {MAX_FILE_BYTES / 2**20:.0f} MiB decompressed"
            else:
                why = f"archive total over {max_total_bytes / 2**20:.0f} MiB decompressed"
            _refuse(refused, name, why)
            continue
        total += size
        n += 1
    return n, total
