"""Safe extraction of dataset archives: no member may land outside the target folder."""

from __future__ import annotations

import logging
import stat
import zipfile
from collections.abc import Iterator
from fnmatch import fnmatchcase
from pathlib import Path, PurePosixPath

log = logging.getLogger(__name__)


def unsafe_reason(name: str, top: str) -> str | None:
    """Why an archive member must not be extracted, or None when it is safe."""
    p = PurePosixPath(name.replace("\\", "/"))
    if p.is_absolute() or (p.parts and ":" in p.parts[0]):
        return "absolute path"
    if ".." in p.parts:
        return "path escapes the target folder ('..')"
    if not p.parts or p.parts[0] != top:
        return f"outside the archive's top folder {top!r}"
    return None


def _is_symlink(info: zipfile.ZipInfo) -> bool:
    return stat.S_ISLNK(info.external_attr >> 16)


def dataset_members(
    zf: zipfile.ZipFile,
    top: str,
    include: tuple[str, ...],
    refused: list[dict] | None = None,
    only: set[str] | None = None,
) -> Iterator[tuple[zipfile.ZipInfo, str]]:
    """Yield (member, path relative to the top folder) for safe members matching ``include``
    (and, when ``only`` is given, listed in it: a real archive holds the whole tree, a
    curated source keeps only its manifest's files).

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
        rel = PurePosixPath(info.filename).relative_to(top).as_posix()
        if only is not None and rel not in only:
            continue
        if any(fnmatchcase(rel, pat) for pat in include):
            yield info, rel


def extract(
    zip_path: str | Path,
    target: str | Path,
    top: str,
    include: tuple[str, ...],
    only: set[str] | None = None,
) -> dict:
    """Extract matching members below ``target``; return counts and refused members."""
    target = Path(target).resolve()
    refused: list[dict] = []
    n = 0
    with zipfile.ZipFile(zip_path) as zf:
        for info, rel in dataset_members(zf, top, include, refused, only):
            dest = (target / rel).resolve()
            if not dest.is_relative_to(target):  # belt and braces after unsafe_reason
                refused.append({"member": info.filename, "reason": "resolves outside target"})
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(dest, "wb") as out:
                while block := src.read(1 << 20):
                    out.write(block)
            n += 1
    return {"extracted": n, "refused": refused}
