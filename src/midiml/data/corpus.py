"""Scores that ship inside music21, written as MIDI files: an offline dataset (``data=corpus``)
and a source of classical score renderings for the full data (``classical_music21``)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from tqdm import tqdm

from midiml.data.sources import Source
from midiml.io import atomic_dir, write_json

log = logging.getLogger(__name__)


def corpus_paths(composer: str, extensions: list[str], limit: int | None) -> list[Path]:
    """music21's corpus files for ``composer``, sorted so every machine picks the same ones.

    A ``limit`` takes evenly spaced files of the sorted list, so that 150 of Bach's 408 scores
    span the whole catalogue rather than its first numbers."""
    from music21 import corpus

    paths = sorted(
        Path(p) for p in corpus.getComposer(composer) if Path(p).suffix in set(extensions)
    )
    if not limit or limit >= len(paths):
        return paths
    if limit == 1:
        return paths[:1]
    picks = sorted({round(i * (len(paths) - 1) / (limit - 1)) for i in range(limit)})
    return [paths[i] for i in picks]


def corpus_works(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """The (composer, extensions, limit) entries of a source's ``corpus`` setting: either one
    composer (``{composer, extensions, limit}``) or several (``{works: [...]}``)."""
    works = spec.get("works") or [spec]
    return [
        {
            "composer": str(w["composer"]),
            "extensions": list(w.get("extensions", [".mxl"])),
            "limit": w.get("limit"),
        }
        for w in works
    ]


def midi_name(path: Path, composer: str) -> str:
    """The MIDI file name of a score: its path below the composer's corpus folder, joined by
    ``_`` (``opus18no1/movement1.krn`` -> ``opus18no1_movement1.mid``); quartets of different
    opus numbers share movement names."""
    for folder in path.parents:  # the nearest one: a folder above may share the name
        if folder.name == composer:
            return "_".join(path.with_suffix("").relative_to(folder).parts) + ".mid"
    return path.stem + ".mid"


def build_corpus_source(source: Source, target: str | Path, progress: bool = True) -> dict:
    """Write ``source``'s music21 scores as MIDI files into ``target/<composer>/`` (atomically).

    A score music21 cannot render (e.g. badly formed repeats) is skipped and reported."""
    from music21 import converter

    todo = [
        (w["composer"], p)
        for w in corpus_works(source.corpus)
        for p in corpus_paths(w["composer"], w["extensions"], w["limit"])
    ]
    written, skipped = 0, []
    with atomic_dir(target) as staging:
        for composer, p in tqdm(todo, desc=f"music21 {source.name}", disable=not progress):
            out_dir = staging / composer
            out_dir.mkdir(parents=True, exist_ok=True)
            try:
                converter.parse(p).write("midi", fp=out_dir / midi_name(p, composer))
                written += 1
            except Exception as exc:  # a score music21 itself cannot render is reported
                log.warning("skipped %s: %s", p.name, exc)
                skipped.append({"score": f"{composer}/{p.name}", "reason": str(exc)})
        report = {"source": source.name, "extracted": written, "refused": [], "skipped": skipped}
        write_json(staging / "_download.json", report)
    return report
