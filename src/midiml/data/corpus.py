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


def render_score(path: Path, composer: str, out_dir: Path) -> dict[str, str] | None:
    """Write one score of the corpus as MIDI into ``out_dir``; the reason, when music21
    cannot render it (e.g. badly formed repeats)."""
    from music21 import converter

    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        converter.parse(path).write("midi", fp=out_dir / midi_name(path, composer))
    except Exception as exc:  # a score music21 itself cannot render is reported
        return {"score": f"{composer}/{path.name}", "reason": str(exc)}
    return None


def build_corpus_source(
    source: Source, target: str | Path, progress: bool = True, n_jobs: int = 1
) -> dict:
    """Write ``source``'s music21 scores as MIDI files into ``target/<composer>/`` (atomically),
    ``n_jobs`` scores at a time (processes; each file is the same whoever writes it).

    A score music21 cannot render is skipped and reported."""
    from joblib import Parallel, delayed

    todo = [
        (w["composer"], p)
        for w in corpus_works(source.corpus)
        for p in corpus_paths(w["composer"], w["extensions"], w["limit"])
    ]
    written, skipped = 0, []
    with atomic_dir(target) as staging:
        results = Parallel(n_jobs=n_jobs, return_as="generator")(
            delayed(render_score)(p, composer, staging / composer) for composer, p in todo
        )
        for (_, p), failed in tqdm(
            zip(todo, results, strict=True),
            total=len(todo),
            desc=f"music21 {source.name}",
            disable=not progress,
        ):
            if failed:
                log.warning("skipped %s: %s", p.name, failed["reason"])
                skipped.append(failed)
            else:
                written += 1
        report = {"source": source.name, "extracted": written, "refused": [], "skipped": skipped}
        write_json(staging / "_download.json", report)
    return report
