"""Dataset sources as plain data: a pinned GitHub archive or the corpus inside music21."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MIRROR_ENV = "MIDIML_MIRROR"
MANIFEST_DIR = Path(__file__).parent / "manifests"


@dataclass(frozen=True)
class Source:
    """One genre's data: where to get it and which files in it are the dataset."""

    name: str
    kind: str  # "github" or "music21"
    repo: str = ""  # owner/name, for kind == "github"
    commit: str = ""
    include: tuple[str, ...] = ("**/*.mid",)
    labels: str = ""  # how labels are read from paths: lofi | classical | videogame | music21
    genre: str = ""  # the genre of every file (default: the source's name)
    max_files: int | None = None  # keep this many files (picked by path hash); None = all
    corpus: dict[str, Any] = field(default_factory=dict)  # for kind == "music21"

    @classmethod
    def from_config(cls, name: str, cfg: Any) -> Source:
        d = dict(cfg)
        return cls(
            name=name,
            kind=d.get("kind", "github"),
            repo=d.get("repo", ""),
            commit=d.get("commit", ""),
            include=tuple(d.get("include", ("**/*.mid",))),
            labels=d.get("labels", name),
            corpus=dict(d.get("corpus", {}) or {}),
            genre=d.get("genre") or name,
            max_files=d.get("max_files"),
        )

    @property
    def archive_name(self) -> str:
        """File name of the archive, as GitHub names it and as the mirror serves it."""
        return f"{self.repo.split('/')[-1]}-{self.commit}.zip"

    @property
    def top_folder(self) -> str:
        return f"{self.repo.split('/')[-1]}-{self.commit}"

    def url(self, mirror: str | None = None) -> str:
        """The archive URL: the mirror when ``MIDIML_MIRROR`` is set, else GitHub."""
        mirror = mirror if mirror is not None else os.environ.get(MIRROR_ENV)
        if mirror:
            return f"{mirror.rstrip('/')}/{self.archive_name}"
        return f"https://github.com/{self.repo}/archive/{self.commit}.zip"

    @property
    def manifest_path(self) -> Path:
        return MANIFEST_DIR / f"{self.name}.json"


def sources_from_params(params: Any) -> dict[str, Source]:
    return {name: Source.from_config(name, cfg) for name, cfg in params.data.sources.items()}
