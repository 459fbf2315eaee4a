"""Build an offline three-genre dataset from the scores that ship inside music21."""

from __future__ import annotations

import logging
from pathlib import Path

from tqdm import tqdm

from midiml.data.sources import Source
from midiml.io import atomic_dir, write_json

log = logging.getLogger(__name__)


def corpus_paths(composer: str, extensions: list[str], limit: int | None) -> list[Path]:
    """music21's corpus files for ``composer``, sorted so every machine picks the same ones."""
    from music21 import corpus

    paths = sorted(
        Path(p) for p in corpus.getComposer(composer) if Path(p).suffix in set(extensions)
    )
    return paths[:limit] if limit else paths


def build_corpus_source(source: Source, target: str | Path, progress: bool = True) -> dict:
    """Write ``source``'s music21 scores as MIDI files into ``target`` (atomically)."""
    from music21 import converter

    spec = source.corpus
    paths = corpus_paths(
        spec["composer"], list(spec.get("extensions", [".mxl"])), spec.get("limit")
    )
    written, skipped = 0, []
    with atomic_dir(target) as staging:
        out_dir = staging / spec["composer"]
        out_dir.mkdir(parents=True)
        for p in tqdm(paths, desc=f"music21 {source.name}", disable=not progress):
            try:
                score = converter.parse(p)
                score.write("midi", fp=out_dir / f"{p.stem}.mid")
                written += 1
            except Exception as exc:  # a score music21 itself cannot render is reported
                log.warning("skipped %s: %s", p.name, exc)
                skipped.append({"score": p.name, "reason": str(exc)})
        report = {"source": source.name, "extracted": written, "refused": [], "skipped": skipped}
        write_json(staging / "_download.json", report)
    return report
