"""DVC stage `download@<source>`: fetch, copy (folder) or build (music21, synthetic) one
source's MIDI."""

import logging
import os
import sys

from midiml.config import load_params
from midiml.data.download import get_source
from midiml.data.sources import sources_from_params


def main(name: str) -> None:
    params = load_params()
    source = sources_from_params(params)[name]
    target = f"data/raw/{name}"
    report = get_source(
        source,
        target,
        max_archive_bytes=int(params.data.max_archive_bytes),
        n_jobs=min(2, os.cpu_count() or 1),
    )
    notes = []
    for r in report["refused"]:  # one line each: which member, why
        print(f"{name}: refused archive member {r['member']}: {r['reason']}")
    if report["refused"]:
        notes.append(f"refused {len(report['refused'])} archive member(s)")
    if report.get("skipped"):
        notes.append(f"skipped {len(report['skipped'])} score(s) music21 could not render")
    print(f"{name}: {report['extracted']} files -> {target}" + "".join(f"; {n}" for n in notes))


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        main(sys.argv[1])
    except Exception as exc:
        sys.exit(f"download failed: {exc}")
