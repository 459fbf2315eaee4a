"""Per-file sha256 manifests: GitHub zips are not byte-stable, the MIDI files inside are."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

from midiml.config import compose_defaults
from midiml.data.archive import dataset_members
from midiml.data.sources import Source
from midiml.io import write_json


class ChecksumError(RuntimeError):
    """A file's content differs from the committed manifest."""


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def load_manifest(path: str | Path) -> dict[str, str]:
    return json.loads(Path(path).read_text())["files"]


def manifest_from_zip(zip_path: str | Path, top: str, include: tuple[str, ...]) -> dict[str, str]:
    """Hash every dataset member of an archive (used to (re)write a committed manifest)."""
    out: dict[str, str] = {}
    with zipfile.ZipFile(zip_path) as zf:
        for info, rel in dataset_members(zf, top, include):
            out[rel] = hashlib.sha256(zf.read(info)).hexdigest()
    return dict(sorted(out.items()))


def verify_folder(folder: str | Path, expected: dict[str, str]) -> None:
    """Check that ``folder`` holds exactly the manifest's files with the manifest's hashes."""
    folder = Path(folder)
    found = {
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.is_file() and not p.name.startswith("_")
    }
    missing = sorted(set(expected) - found)
    extra = sorted(found - set(expected))
    if missing:
        raise ChecksumError(
            f"{len(missing)} file(s) of the manifest are missing, e.g. {missing[0]!r}"
        )
    if extra:
        raise ChecksumError(f"file not in the manifest: {extra[0]!r} ({len(extra)} in all)")
    for rel, digest in expected.items():
        actual = sha256_file(folder / rel)
        if actual != digest:
            raise ChecksumError(
                f"checksum mismatch for {rel!r}: expected sha256 {digest}, got {actual}"
            )


def main() -> None:
    """Rewrite the committed manifests from archives: ``python -m midiml.data.manifest DIR``."""
    import sys

    archive_dir = Path(sys.argv[1])
    for name, cfg in compose_defaults()["data"]["sources"].items():
        src = Source.from_config(name, cfg)
        if src.kind != "github":  # written from music21 or the user's own: no manifest
            continue
        files = manifest_from_zip(archive_dir / src.archive_name, src.top_folder, src.include)
        write_json(
            src.manifest_path,
            {"source": name, "repo": src.repo, "commit": src.commit, "files": files},
        )
        print(f"{name}: {len(files)} files -> {src.manifest_path}")


if __name__ == "__main__":
    main()
