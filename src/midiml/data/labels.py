"""Labels read from each dataset's folder layout and file names (plain dicts, one per file)."""

from __future__ import annotations

import csv
import re
from pathlib import Path, PurePosixPath

LABEL_FIELDS = ("label", "composer", "family", "franchise", "console", "game", "title")
NOT_A_COMPOSER = {"Christmas"}  # a folder of carols in ClassicalPianoMIDI, not a person


def _empty() -> dict[str, str | None]:
    return dict.fromkeys(LABEL_FIELDS)


def lofi(rel: str) -> dict[str, str | None]:
    """``samples/ii-V12.mid`` -> family ``ii-V``: the loop family is the name minus its number."""
    out = _empty()
    stem = PurePosixPath(rel).stem
    out["family"] = re.sub(r"\d+$", "", stem) or stem
    out["label"] = out["family"]
    return out


def classical(rel: str) -> dict[str, str | None]:
    """``midis/<Composer>/x.mid`` -> composer (None for the Christmas folder)."""
    out = _empty()
    folder = PurePosixPath(rel).parent.name
    out["composer"] = None if folder in NOT_A_COMPOSER else folder
    out["label"] = folder
    return out


def videogame(rel: str) -> dict[str, str | None]:
    """``<franchise>_<console>_<game>_<title>.mid`` -> those four fields."""
    out = _empty()
    parts = PurePosixPath(rel).stem.split("_", 3)
    parts += [None] * (4 - len(parts))
    out["franchise"], out["console"], out["game"], out["title"] = parts
    out["label"] = out["franchise"]
    return out


def music21(rel: str) -> dict[str, str | None]:
    out = _empty()
    out["label"] = PurePosixPath(rel).parent.name or None
    return out


def none(rel: str) -> dict[str, str | None]:
    """A user's collection without path conventions: labels come only from a CSV, if any."""
    return _empty()


def folder(rel: str) -> dict[str, str | None]:
    """Second sources: the parent folder as a free label; no composer, so the composer
    tasks stay on the curated dataset whose composer folders are clean."""
    return music21(rel)


READERS = {
    "lofi": lofi,
    "classical": classical,
    "videogame": videogame,
    "music21": music21,
    "none": none,
    "folder": folder,
}


class LabelsCsvError(ValueError):
    """The labels CSV cannot be used; the message names the file and the reason."""


def read_csv(path: str | Path) -> dict[str, dict[str, str]]:
    """Labels per file from a CSV: a ``path`` column (relative to the collection's folder,
    ``/``-separated) and any of the label columns; empty cells mean "unknown"."""
    path = Path(path)
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        columns = reader.fieldnames or []
        if "path" not in columns:
            raise LabelsCsvError(f"{path}: no 'path' column (columns: {columns})")
        unknown = sorted(set(columns) - {"path", *LABEL_FIELDS})
        if unknown:
            raise LabelsCsvError(
                f"{path}: unknown column(s) {unknown}; use 'path' and any of {list(LABEL_FIELDS)}"
            )
        out: dict[str, dict[str, str]] = {}
        for row in reader:
            rel = PurePosixPath(row["path"].strip().replace("\\", "/")).as_posix()
            out[rel] = {k: v.strip() for k, v in row.items() if k != "path" and v and v.strip()}
    return out


def read_versions(path: str | Path, source: str) -> dict[str, str]:
    """Piece per file name from a dataset's table of versions: each row names a piece (first
    column) and the files that are versions of it (other columns, file names; tab, comma
    or semicolon separated, with a header). Pieces are ``<source>/<name>``."""
    path = Path(path)
    if not path.is_file():
        raise LabelsCsvError(f"{path}: no such table of versions (data.sources.{source}.versions)")
    text = path.read_text(encoding="utf-8-sig")
    dialect = csv.Sniffer().sniff(text.splitlines()[0], delimiters="\t,;")
    rows = list(csv.reader(text.splitlines(), dialect))
    out: dict[str, str] = {}
    for row in rows[1:]:
        if len(row) < 2 or not row[0].strip():
            continue
        for name in row[1:]:
            if name.strip():
                out[PurePosixPath(name.strip()).name] = f"{source}/{row[0].strip()}"
    return out


def labels_for(scheme: str, rel: str) -> dict[str, str | None]:
    try:
        return READERS[scheme](rel)
    except KeyError:
        known = sorted(READERS)
        raise ValueError(f"unknown label scheme {scheme!r}; choose from {known}") from None
