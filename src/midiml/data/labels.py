"""Labels read from each dataset's folder layout and file names (plain dicts, one per file)."""

from __future__ import annotations

import re
from pathlib import PurePosixPath

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


def folder(rel: str) -> dict[str, str | None]:
    """Second sources: the parent folder as a free label; no composer, so the composer
    tasks stay on the curated dataset whose composer folders are clean."""
    return music21(rel)


READERS = {
    "lofi": lofi,
    "classical": classical,
    "videogame": videogame,
    "music21": music21,
    "folder": folder,
}


def labels_for(scheme: str, rel: str) -> dict[str, str | None]:
    try:
        return READERS[scheme](rel)
    except KeyError:
        known = sorted(READERS)
        raise ValueError(f"unknown label scheme {scheme!r}; choose from {known}") from None
