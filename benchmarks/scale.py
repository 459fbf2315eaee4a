"""Benchmark: ingest, features and windows on collections of growing size (`make bench`).

1. ``ingest_vs_parse``: the ingest of the real files (``--raw``, e.g. the 660 downloaded ones)
   against symusic's bare parse of the same files, measured in the same run (best of 3).
2. ``scale``: a synthetic collection written here from the real files (transposed, cropped
   and re-tempoed copies, saved with symusic; genre = the real file's source folder), then for
   each size in ``--sizes`` the first N files go through ingest -> features -> windows, each
   step in a fresh process so its wall time and peak memory (VmHWM of the process, ru_maxrss
   of its pool workers) are its own. Results go to
   ``reports/metrics/benchmarks.json`` (+ ``reports/benchmarks.md``) and a log-log plot of
   cost against size to ``reports/figures/benchmark_scale.png``.

Usage: ``python benchmarks/scale.py --sizes 1000,5000,20000,50000`` (the synthetic files are
kept in ``--work`` and reused by the next run).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import symusic

from midiml.data.ingest import FoundFile, Rules, find_files, ingest_to_parquet
from midiml.data.sources import Source
from midiml.data.split import split_songs
from midiml.report.benchmarks import record
from midiml.represent.features import write_features_streamed
from midiml.represent.windows import save_event_data_streamed

REPO = Path(__file__).resolve().parents[1]
FIGURE = REPO / "reports" / "figures" / "benchmark_scale.png"
STEPS = ("ingest", "features", "windows")


def real_files(raw: Path) -> list[FoundFile]:
    """Every MIDI file below ``raw/<source>/``, the genre being the source folder."""
    sources = [Source(p.name, "github", labels="none") for p in sorted(raw.iterdir()) if p.is_dir()]
    return find_files(raw, sources)


def ingest_vs_parse(raw: Path, workers: int, repeats: int = 3) -> dict:
    """Best-of-``repeats`` seconds: symusic's bare parse vs our ingest of the same files.

    Wall time, and CPU time of this process (all its threads) for the serial ingest: on a
    shared machine the CPU-time ratio is the steadier one (wall time includes waiting for
    other people's processes).
    """
    found = real_files(raw)
    out = Path(os.environ.get("TMPDIR", "/tmp")) / "midiml-bench-notes.parquet"
    wall: dict[str, list[float]] = {"bare": [], "serial": [], "pool": []}
    cpu: dict[str, list[float]] = {"bare": [], "serial": []}
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        for f in found:
            try:  # noqa: SIM105 (contextlib.suppress would add its own cost to the timing)
                symusic.Score(str(f.path))
            except Exception:  # noqa: BLE001 (bad files cost what they cost)
                pass
        wall["bare"].append(time.perf_counter() - w0)
        cpu["bare"].append(time.process_time() - c0)
        for key, w in (("serial", 1), ("pool", workers)):
            w0, c0 = time.perf_counter(), time.process_time()
            _, n_notes = ingest_to_parquet(found, Rules(), out, workers=w, progress=False)
            wall[key].append(time.perf_counter() - w0)
            if key in cpu:
                cpu[key].append(time.process_time() - c0)
    out.unlink(missing_ok=True)
    best = {k: min(v) for k, v in wall.items()}
    best_cpu = {k: min(v) for k, v in cpu.items()}
    return {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "load_average_1min": round(os.getloadavg()[0], 2),
        "files": len(found),
        "notes": int(n_notes),
        "bare_parse_s": round(best["bare"], 3),
        "ingest_serial_s": round(best["serial"], 3),
        "ingest_pool_s": round(best["pool"], 3),
        "pool_workers": workers or os.cpu_count(),
        "ratio_serial": round(best["serial"] / best["bare"], 1),
        "ratio_pool": round(best["pool"] / best["bare"], 1),
        "bare_parse_cpu_s": round(best_cpu["bare"], 3),
        "ingest_serial_cpu_s": round(best_cpu["serial"], 3),
        "ratio_serial_cpu": round(best_cpu["serial"] / best_cpu["bare"], 1),
    }


def write_synthetic(raw: Path, folder: Path, n: int, seed: int = 0) -> None:
    """``n`` files ``<genre>/s<i>.mid``: copy i of real file i % R, transposed by -5..+6
    semitones, cropped to a random 25-75 % stretch, tempo scaled by 0.8-1.25. Existing
    files are kept, so a bigger run only writes what is missing."""
    found = real_files(raw)
    rng = np.random.default_rng(seed)
    params = rng.random((n, 3))  # drawn for all n up front: file i is the same in every run
    for i in range(n):
        f = found[i % len(found)]
        dest = folder / f.genre / f"s{i:06d}.mid"
        if dest.exists():
            continue
        try:
            score = symusic.Score(str(f.path))
        except Exception:  # noqa: BLE001 (a bad original gives a bad copy: kept as it is)
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(f.path.read_bytes())
            continue
        end = int(score.end())
        start = int(end * 0.5 * params[i, 0])
        stop = start + int(end * (0.25 + 0.5 * params[i, 1]))
        score = score.clip(start, max(stop, start + 1), clip_end=False).shift_time(-start)
        with contextlib.suppress(ValueError):  # a note would leave 0..127: keep the key
            score = score.shift_pitch(int(params[i, 2] * 12) - 5)
        factor = 0.8 + 0.45 * params[i, 2]
        for t in score.tempos:
            t.mspq = int(t.mspq * factor)
        dest.parent.mkdir(parents=True, exist_ok=True)
        score.dump_midi(str(dest))


def synthetic_found(folder: Path, n: int) -> list[FoundFile]:
    """The first ``n`` synthetic files (by copy number), in file_id order."""
    wanted = {f"s{i:06d}.mid" for i in range(n)}
    found = []
    for genre in sorted(p for p in folder.iterdir() if p.is_dir()):
        for entry in os.scandir(genre):
            if entry.name in wanted:
                rel = f"{genre.name}/{entry.name}"
                found.append(FoundFile(Path(entry.path), f"synth/{rel}", genre.name, rel, "none"))
    return sorted(found, key=lambda f: f.file_id)


def own_peak_mb() -> float:
    """This process's peak resident memory (MB). Linux's ``ru_maxrss`` carries the peak of the
    process that forked it over ``exec`` (here the driver, ~570 MB after the parse test), so
    a small step would report the driver's size: VmHWM is the peak of this program alone."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_step(step: str, work: Path, n: int, workers: int) -> dict:
    """One step on the first ``n`` synthetic files, in this process (called in a child)."""
    folder, notes, files_path = (
        work / "synth",
        work / f"notes_{n}.parquet",
        work / f"files_{n}.parquet",
    )
    found = synthetic_found(folder, n) if step == "ingest" else []  # not timed: a listing
    t0 = time.perf_counter()
    if step == "ingest":
        files, n_notes = ingest_to_parquet(found, Rules(), notes, workers=workers, progress=False)
        files.to_parquet(files_path, index=False)
        extra = {"notes": int(n_notes), "ok": int((files["status"] == "ok").sum())}
    elif step == "features":
        out = work / f"features_{n}.parquet"  # written as the stage writes it
        rows, _ = write_features_streamed(notes, pd.read_parquet(files_path), out)
        out.unlink()
        extra = {"rows": rows}
    else:
        splits = split_songs(pd.read_parquet(files_path), 0.15, 0.15, seed=42)
        out = work / f"windows_{n}.npz"
        counts = save_event_data_streamed(notes, splits, 32, 1, {"val": 200, "test": 200}, out)
        out.unlink()
        extra = {"train_windows": counts["windows"]["train"]}
    seconds = time.perf_counter() - t0
    own = own_peak_mb()
    pool = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {
        "step": step,
        "n_files": n,
        "seconds": round(seconds, 2),
        "peak_rss_mb": round(own, 1),
        "worker_peak_rss_mb": round(pool, 1),
        # seconds on a shared machine mean little without the load they were taken under
        "load_average_1min": round(os.getloadavg()[0], 2),
        **extra,
    }


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from midiml.io import save_figure

    df = pd.DataFrame(rows)
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    for step, g in df.groupby("step", sort=False):
        g = g.sort_values("n_files")
        a.plot(g["n_files"], g["seconds"], "o-", label=step)
        b.plot(g["n_files"], g[["peak_rss_mb", "worker_peak_rss_mb"]].max(axis=1), "o-", label=step)
    for ax, label in ((a, "wall time (s)"), (b, "peak memory per process (MB)")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("files in the collection")
        ax.set_ylabel(label)
        ax.legend()
    a.set_title("cost against collection size")
    fig.tight_layout()
    save_figure(fig, path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="1000,5000", help="comma-separated collection sizes")
    ap.add_argument("--raw", type=Path, default=REPO / "data" / "raw", help="real MIDI files")
    ap.add_argument("--work", type=Path, default=Path("/tmp/midiml-bench"))
    ap.add_argument("--workers", type=int, default=0, help="ingest processes (0 = one per core)")
    ap.add_argument(
        "--steps", default=",".join(STEPS), help="comma-separated steps (ingest always runs)"
    )
    ap.add_argument("--step", choices=STEPS, help=argparse.SUPPRESS)  # child mode
    ap.add_argument("--n", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.step:
        print(json.dumps(run_step(args.step, args.work, args.n, args.workers)))
        return
    if not args.raw.is_dir():
        raise SystemExit(f"{args.raw}: no real MIDI files; run `dvc repro ingest` first")
    versus = ingest_vs_parse(args.raw, args.workers)
    record("ingest_vs_parse", versus)
    print(f"ingest_vs_parse: {json.dumps(versus)}", flush=True)

    sizes = sorted(int(s) for s in args.sizes.split(","))
    t0 = time.perf_counter()
    write_synthetic(args.raw, args.work / "synth", max(sizes))
    print(
        f"synthetic collection: {max(sizes)} files in {time.perf_counter() - t0:.1f} s", flush=True
    )
    steps = [s for s in STEPS if s == "ingest" or s in args.steps.split(",")]
    rows = []
    for n in sizes:
        for step in steps:
            cmd = [
                sys.executable,
                __file__,
                "--step",
                step,
                "--n",
                str(n),
                "--work",
                str(args.work),
                "--workers",
                str(args.workers),
            ]
            res = subprocess.run(cmd, check=True, capture_output=True, text=True)
            rows.append(json.loads(res.stdout.strip().splitlines()[-1]))
            print(json.dumps(rows[-1]), flush=True)
        for p in (args.work / f"notes_{n}.parquet", args.work / f"files_{n}.parquet"):
            p.unlink(missing_ok=True)
    plot(rows, FIGURE)
    per_file = {
        s: [r["seconds"] / r["n_files"] * 1000 for r in rows if r["step"] == s] for s in steps
    }
    record(
        "scale",
        {
            "machine": f"{platform.machine()}, {os.cpu_count()} cores",
            "sizes": sizes,
            "rows": rows,
            "ms_per_file": {s: [round(v, 3) for v in vals] for s, vals in per_file.items()},
            "figure": "figures/benchmark_scale.png",
        },
    )


if __name__ == "__main__":
    main()
