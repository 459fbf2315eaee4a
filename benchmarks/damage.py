"""Damaged copies of real MIDI files through the one reader: what is kept, what is invented.

Each copy is a real file damaged once, seeded (``tests.malformed.damage``: bytes flipped, the
file cut short, a run of bytes repeated, inserted or zeroed, a track's length field rewritten,
stray meta-event bytes), then read twice by :func:`midiml.data.midi.check_columns`: ``strict``
(the reader before salvage: any damage refuses the file) and as ingest and the CLI read it.
Its notes are compared with the undamaged file's, a note being (pitch, onset tick):
a note the undamaged file does not have is *invented*.

Usage (nice'd on a shared machine)::

    python benchmarks/damage.py --zip ../shared/datasets/whowrotethatsong-<commit>.zip \
        --left-out classical_whowrotethatsong --n 1000   # files the pipeline does not use
    python benchmarks/damage.py --folder data/raw/classical_music21 --tiny --n 1000

Prints the shares and writes them as JSON with ``--out``.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import zipfile
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from fnmatch import fnmatchcase
from hashlib import sha256
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from midiml.data import salvage  # noqa: E402
from midiml.data.midi import MidiParseError, Rules, check_columns, use_compiled_scan  # noqa: E402
from tests.malformed import damage, notes_body, simple, tempo  # noqa: E402
from tests.malformed import end_of_track as eot  # noqa: E402
from tests.malformed import header as mthd  # noqa: E402
from tests.malformed import track as mtrk  # noqa: E402


def note_keys(cols: dict, tpq: int) -> Counter:
    """The notes as (pitch, onset tick): the music, whatever track number a reader gives it
    (a track emptied by damage shifts the numbers of those after it)."""
    ticks = (cols["onset_beats"] * tpq).round().astype(int)
    return Counter(zip(cols["pitch"].tolist(), ticks.tolist(), strict=True))


def read(name: str, data: bytes, strict: bool) -> tuple[str, Any, Any]:
    """("notes", columns, summary) | ("refused", reason, None) | ("error", what, None)."""
    try:
        cols, info = check_columns(name, Rules(strict=strict), data)
    except MidiParseError as exc:
        return "refused", exc.reason, None
    except Exception as exc:  # the reader must never get here
        return "error", f"{type(exc).__name__}: {exc}", None
    return "notes", cols, info


def first_note_end(data: bytes) -> int:
    """Where the file's first complete note-on ends: a file cut before it holds no note."""
    best, i = len(data), 14
    while i + 8 <= len(data):
        length = int.from_bytes(data[i + 4 : i + 8], "big")
        body, end = i + 8, min(i + 8 + length, len(data))
        if data[i : i + 4] == b"MTrk":
            events = salvage.walk(data, body, end)
            for k, (_, _, kind, _, _) in enumerate(events):
                if kind == 1:  # a note-on: it ends where the next event starts
                    best = min(best, events[k + 1][0] if k + 1 < len(events) else end)
                    break
        i = body + length
    return best


def judge(job: tuple[str, bytes, bytes, str]) -> dict:
    """One damaged copy: before (strict) and after (salvage), invented notes counted."""
    name, original, damaged, kind = job
    _, ocols, oinfo = read(name, original, False)
    before, _, _ = read(name, damaged, True)
    after, cols, info = read(name, damaged, False)
    row = {"name": name, "kind": kind, "before": before, "after": after}
    if kind == "truncate":  # could any reader give a note: is a whole note-on before the cut?
        row["note_before_cut"] = len(damaged) >= first_note_end(original)
    if after == "error":
        row["error"] = cols
    if after == "notes":
        got = note_keys(cols, info["ticks_per_quarter"])
        real = note_keys(ocols, oinfo["ticks_per_quarter"])
        row["notes"] = sum(got.values())
        row["invented"] = sum((got - real).values())
        row["salvaged"] = bool(info["salvaged"])
        row["kept_share"] = row["notes"] / max(sum(real.values()), 1)
    elif after == "refused":
        row["reason"] = cols
    return row


def tiny_files() -> dict[str, bytes]:
    """Small files built byte by byte: one track, three tracks, running status, drums."""
    three = mthd(1, 3) + mtrk(tempo(500_000) + eot())
    three += mtrk(notes_body(24, 240) + eot()) + mtrk(notes_body(24, 120, 1, 48) + eot())
    return {
        "tiny/one_track.mid": simple(32),
        "tiny/three_tracks.mid": three,
        "tiny/drums.mid": simple(body=notes_body(40, 60, channel=9, pitch0=36)),
        "tiny/long_notes.mid": simple(body=notes_body(12, 1920)),
    }


def project_choice(ids: list[str], max_files: int) -> set[str]:
    """The files a source with ``max_files`` keeps (as midiml.data.ingest.find_files picks)."""
    return set(sorted(ids, key=lambda i: sha256(i.encode()).hexdigest())[:max_files])


def zip_files(path: Path, include: str, left_out: str | None, max_files: int) -> dict[str, bytes]:
    """MIDI files of a mirror zip; with ``left_out`` (the source's name) only those the
    pipeline's ``max_files`` choice leaves out, i.e. files it never trains on."""
    with zipfile.ZipFile(path) as zf:
        names = [n for n in zf.namelist() if n.lower().endswith((".mid", ".midi"))]
        top = names[0].split("/", 1)[0]
        rels = {n: n.split("/", 1)[1] for n in names if fnmatchcase(n.split("/", 1)[1], include)}
        if left_out:
            used = project_choice([f"{left_out}/{r}" for r in rels.values()], max_files)
            rels = {n: r for n, r in rels.items() if f"{left_out}/{r}" not in used}
        return {f"{top}/{r}": zf.read(n) for n, r in sorted(rels.items())}


def copies(files: dict[str, bytes], n: int, seed: int) -> list[tuple[str, bytes, bytes, str]]:
    """``n`` seeded (name, undamaged, damaged, kind of damage) of the files the reader uses."""
    usable = {k: v for k, v in files.items() if read(k, v, False)[0] == "notes"}
    rng = random.Random(seed)
    names = sorted(usable)
    jobs = []
    for _ in range(n):
        name = rng.choice(names)
        damaged, kind = damage(usable[name], rng)
        jobs.append((name, usable[name], damaged, kind))
    return jobs


def write_copies(files: dict[str, bytes], n: int, seed: int, folder: Path) -> None:
    """The damaged copies as files ``<folder>/<i>_<kind>_<name>.mid``."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, (name, _, damaged, kind) in enumerate(copies(files, n, seed)):
        (folder / f"{i:04d}_{kind}_{Path(name).stem[:40]}.mid").write_bytes(damaged)


def run(files: dict[str, bytes], n: int, seed: int, workers: int) -> list[dict]:
    use_compiled_scan()
    jobs = copies(files, n, seed)
    rows: list[dict] = []
    while len(rows) < len(jobs):  # a crash (a dead worker) is counted, the rest goes on
        todo = jobs[len(rows) :]
        try:
            with ProcessPoolExecutor(workers, initializer=use_compiled_scan) as pool:
                for row in pool.map(judge, todo, chunksize=8):
                    rows.append(row)
        except BrokenProcessPool:
            name, _, _, kind = jobs[len(rows)]
            rows.append({"name": name, "kind": kind, "before": "crash", "after": "crash"})
    return rows


def summary(rows: list[dict]) -> dict:
    def share(sel: list[dict], cond) -> float:
        return round(sum(1 for r in sel if cond(r)) / max(len(sel), 1), 4)

    cut = [r for r in rows if r["kind"] == "truncate"]
    read_ = [r for r in rows if r["after"] == "notes"]
    salv = [r for r in read_ if r["salvaged"]]
    out = {
        "copies": len(rows),
        "unexpected_errors": sum(r["after"] == "error" for r in rows),
        "crashes": sum(r["after"] == "crash" for r in rows),
        "give_notes_before": share(rows, lambda r: r["before"] == "notes"),
        "give_notes_after": share(rows, lambda r: r["after"] == "notes"),
        "truncated": len(cut),
        "truncated_give_notes_before": share(cut, lambda r: r["before"] == "notes"),
        "truncated_give_notes_after": share(cut, lambda r: r["after"] == "notes"),
        "truncated_with_a_whole_note_on_before_the_cut": sum(r["note_before_cut"] for r in cut),
        "of_those_give_notes_after": share(
            [r for r in cut if r["note_before_cut"]], lambda r: r["after"] == "notes"
        ),
        "salvaged_files": len(salv),
        "salvaged_notes": sum(r["notes"] for r in salv),
        "invented_share_of_salvaged_notes": round(
            sum(r["invented"] for r in salv) / max(sum(r["notes"] for r in salv), 1), 5
        ),
        "notes_read_from_damaged_files": sum(r["notes"] for r in read_),
        "invented_share_of_all_notes_read": round(
            sum(r["invented"] for r in read_) / max(sum(r["notes"] for r in read_), 1), 5
        ),
        "mean_share_of_notes_kept_by_salvaged_files": round(
            sum(r["kept_share"] for r in salv) / max(len(salv), 1), 4
        ),
        "by_kind": {},
    }
    for kind in sorted({r["kind"] for r in rows}):
        sel = [r for r in rows if r["kind"] == kind]
        got = [r for r in sel if r["after"] == "notes"]
        out["by_kind"][kind] = {
            "copies": len(sel),
            "give_notes_before": share(sel, lambda r: r["before"] == "notes"),
            "give_notes_after": share(sel, lambda r: r["after"] == "notes"),
            "invented_share": round(
                sum(r["invented"] for r in got) / max(sum(r["notes"] for r in got), 1), 5
            ),
        }
    reasons = Counter(r.get("reason", "").split(" in track")[0] for r in rows if "reason" in r)
    out["refusals"] = dict(reasons.most_common(8))
    out["errors"] = [r["error"] for r in rows if r["after"] == "error"][:5]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--zip", type=Path, help="a mirror zip (../shared/datasets/...)")
    ap.add_argument("--include", default="midi/classical/*", help="paths inside the zip")
    ap.add_argument("--left-out", help="keep only files this source's max_files leaves out")
    ap.add_argument("--max-files", type=int, default=450, help="that source's max_files")
    ap.add_argument("--folder", type=Path, help="a folder of MIDI files (any depth)")
    ap.add_argument("--tiny", action="store_true", help="add the tiny files built here")
    ap.add_argument("--n", type=int, default=1000, help="damaged copies")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", type=Path, help="write the summary here as JSON")
    ap.add_argument(
        "--write", type=Path, help="also write the damaged copies here (to try the commands on)"
    )
    args = ap.parse_args()
    files: dict[str, bytes] = {}
    if args.zip:
        files.update(zip_files(args.zip, args.include, args.left_out, args.max_files))
    if args.folder:
        files.update({p.as_posix(): p.read_bytes() for p in sorted(args.folder.rglob("*.mid"))})
    if args.tiny:
        files.update(tiny_files())
    if not files:
        raise SystemExit("no files: give --zip, --folder or --tiny")
    rows = run(files, args.n, args.seed, args.workers)
    if args.write:
        write_copies(files, args.n, args.seed, args.write)
    out = {"files": len(files), **summary(rows)}
    print(json.dumps(out, indent=2))
    if args.out:
        args.out.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
