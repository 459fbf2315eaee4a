"""Dataset sources as plain data: a pinned GitHub archive, the corpus inside music21, a local
folder (the user's own collection), any zip/tar archive at a URL with its sha256, or files a
generator writes (``synthetic``: ``midiml.data.synthetic``)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MIRROR_ENV = "MIDIML_MIRROR"
MANIFEST_DIR = Path(__file__).parent / "manifests"
MIDI_SUFFIXES = {".mid", ".midi"}  # compared lower-case
LABELS_CSV_NAME = "_labels.csv"  # a source's labels CSV, copied next to its files by download


@dataclass(frozen=True)
class Source:
    """One genre's data: where to get it and which files in it are the dataset."""

    name: str
    kind: str  # "github" | "music21" | "folder" | "url" | "synthetic"
    repo: str = ""  # owner/name, for kind == "github"
    commit: str = ""
    include: tuple[str, ...] = ("**/*.mid",)
    labels: str = ""  # path conventions: lofi | classical | videogame | music21 | folder | none
    max_files: int | None = None  # keep this many files (picked by path hash); None = all
    corpus: dict[str, Any] = field(default_factory=dict)  # for kind == "music21"
    path: str = ""  # for kind == "folder": the user's folder
    archive_url: str = ""  # for kind == "url": a .zip/.tar(.gz|.bz2|.xz) archive
    sha256: str = ""  # for kind == "url": the archive's checksum (required)
    top: str = ""  # for kind == "url": folder inside the archive that holds the dataset
    genre: str = ""  # the genre of every file ("" = the source's name)
    genre_from_folder: bool = False  # each file's first sub-folder is its genre
    labels_csv: str = ""  # optional CSV: a `path` column + label columns (see labels.read_csv)
    versions: str = ""  # optional table inside the dataset: a piece, then its files' names
    generator: dict[str, Any] = field(default_factory=dict)  # kind == "synthetic": `_target_`

    @classmethod
    def from_config(cls, name: str, cfg: Any) -> Source:
        d = dict(cfg)
        kind = d.get("kind", "github")
        own = kind in ("folder", "url")  # a user's collection: genres from sub-folders
        return cls(
            name=name,
            kind=kind,
            repo=d.get("repo", ""),
            commit=d.get("commit", ""),
            include=tuple(d.get("include") or (("*",) if own else ("**/*.mid",))),
            labels=d.get("labels") or ("none" if own or kind == "synthetic" else name),
            corpus=dict(d.get("corpus", {}) or {}),
            path=str(d.get("path") or ""),
            archive_url=str(d.get("url") or ""),
            sha256=str(d.get("sha256") or "").lower().removeprefix("sha256:"),
            top=str(d.get("top") or ""),
            genre=str(d.get("genre") or ""),
            genre_from_folder=own and not d.get("genre"),
            labels_csv=str(d.get("labels_csv") or ""),
            versions=str(d.get("versions") or ""),
            generator=dict(d.get("generator") or {}),
            max_files=d.get("max_files"),
        )

    def genre_of(self, rel: str) -> str | None:
        """The genre of the file at ``rel`` (None: a file outside any genre sub-folder)."""
        if not self.genre_from_folder:
            return self.genre or self.name
        parts = rel.split("/")
        return parts[0] if len(parts) > 1 else None

    @property
    def archive_name(self) -> str:
        """File name of the archive, as GitHub names it and as the mirror serves it."""
        return f"{self.repo.split('/')[-1]}-{self.commit}.zip"

    @property
    def top_folder(self) -> str:
        return f"{self.repo.split('/')[-1]}-{self.commit}"

    def url(self, mirror: str | None = None) -> str:
        """The archive URL: the mirror when ``MIDIML_MIRROR`` is set, else GitHub."""
        if self.kind == "url":
            return self.archive_url
        mirror = mirror if mirror is not None else os.environ.get(MIRROR_ENV)
        if mirror:
            return f"{mirror.rstrip('/')}/{self.archive_name}"
        return f"https://github.com/{self.repo}/archive/{self.commit}.zip"

    @property
    def manifest_path(self) -> Path:
        return MANIFEST_DIR / f"{self.name}.json"


def sources_from_params(params: Any) -> dict[str, Source]:
    """The training sources (``data.sources``): each gets a download stage and is ingested."""
    return {name: Source.from_config(name, cfg) for name, cfg in params.data.sources.items()}


def check_sources_from_params(params: Any) -> dict[str, Source]:
    """The check sources (``data.check_sources``): obtained like any source, never ingested or
    trained on; models are scored on them. Each has one ``genre``, the one it should be called."""
    data = params.get("data") or {}  # a classifier-only configuration has none
    found = {n: Source.from_config(n, c) for n, c in (data.get("check_sources") or {}).items()}
    for name, source in found.items():
        if not source.genre:
            raise ValueError(f"data.check_sources.{name}: a check source needs its `genre`")
    return found
