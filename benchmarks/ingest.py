"""Benchmark: download (from the loopback mirror) and ingest of the full data on this machine.

Writes ``ingest`` into ``reports/metrics/benchmarks.json`` (and ``reports/benchmarks.md``):
seconds for fetching and verifying the three archives, seconds for parsing all files,
files/s and notes/s.
Needs ``../shared/datasets`` (served here on a free loopback port).
"""

from __future__ import annotations

import http.server
import json
import os
import platform
import tempfile
import threading
import time
from pathlib import Path

from midiml.config import compose_defaults
from midiml.data.download import download_source
from midiml.data.ingest import Rules, find_files, ingest
from midiml.data.sources import MIRROR_ENV, Source
from midiml.report.benchmarks import record

REPO = Path(__file__).resolve().parents[1]
MIRROR = REPO.parent / "shared" / "datasets"
OUT = REPO / "reports" / "metrics" / "benchmarks.json"
PAGE = REPO / "reports" / "benchmarks.md"


def serve(folder: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    def handler(*a, **kw):
        return http.server.SimpleHTTPRequestHandler(*a, directory=str(folder), **kw)

    http.server.SimpleHTTPRequestHandler.log_message = lambda *a: None  # quiet
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def run() -> dict:
    cfg = compose_defaults(conf_dir=str(REPO / "conf"))["data"]
    sources = [Source.from_config(k, v) for k, v in cfg["sources"].items()]
    server, url = serve(MIRROR)
    os.environ[MIRROR_ENV] = url
    try:
        with tempfile.TemporaryDirectory() as tmp:
            raw = Path(tmp) / "raw"
            t0 = time.perf_counter()
            for src in sources:
                download_source(src, raw / src.name, progress=False)
            t1 = time.perf_counter()
            files, notes = ingest(
                find_files(raw, sources),
                Rules(cfg["max_length_s"], cfg["min_notes"]),
                workers=0,
                progress=False,
            )
            t2 = time.perf_counter()
    finally:
        server.shutdown()
    return {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "files": len(files),
        "notes": len(notes),
        "download_verify_s": round(t1 - t0, 2),
        "ingest_s": round(t2 - t1, 2),
        "total_s": round(t2 - t0, 2),
        "files_per_s": round(len(files) / (t2 - t1), 1),
        "notes_per_s": round(len(notes) / (t2 - t1)),
    }


if __name__ == "__main__":
    if not (MIRROR / "SHA256SUMS").exists():
        raise SystemExit(f"{MIRROR}: dataset mirror not found")
    res = run()
    record("ingest", res, OUT, PAGE)
    print(json.dumps(res, indent=2))
