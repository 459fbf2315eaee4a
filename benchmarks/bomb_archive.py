"""A decompression bomb through a URL source served on 127.0.0.1: refused by name, bounded.

Builds a zip (and a tar.gz) of ``coll/<genre>/*.mid``: three small MIDI files and one
``bomb.mid`` of ``--mib`` MiB (zeros after "MThd": about 0.3 MB compressed for 300 MiB), serves
it over real HTTP on 127.0.0.1, runs the download stage's code for a ``kind: url`` source
(:func:`midiml.data.download.download_url_source`), and prints the refused members, the files
extracted and the bytes this process handed to write() meanwhile (Linux ``/proc/self/io``).

Usage: ``python benchmarks/bomb_archive.py --mib 300``
"""

from __future__ import annotations

import argparse
import hashlib
import http.server
import io
import json
import sys
import tarfile
import tempfile
import threading
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from midiml.data.download import download_url_source  # noqa: E402
from midiml.data.sources import Source  # noqa: E402
from tests.malformed import simple  # noqa: E402

CHUNK = 1 << 20


def written() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("wchar:"):
            return int(line.split()[1])
    raise RuntimeError("no /proc/self/io")


def small_files() -> dict[str, bytes]:
    return {f"coll/{g}/song{i}.mid": simple(8 + i) for i, g in enumerate(["a", "a", "b"])}


def zeros(mib: int):
    yield b"MThd"
    for _ in range(mib):
        yield bytes(CHUNK)


def make_zip(path: Path, mib: int) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for name, data in small_files().items():
            zf.writestr(name, data)
        with zf.open("coll/a/bomb.mid", "w", force_zip64=True) as out:
            for block in zeros(mib):
                out.write(block)


class _Zeros:
    """A readable file of ``size`` bytes: "MThd", then zeros (never all in memory)."""

    def __init__(self, size: int) -> None:
        self.left, self.head = size, b"MThd"

    def read(self, n: int = CHUNK) -> bytes:
        n = min(n, self.left)
        out = (self.head + bytes(max(n - len(self.head), 0)))[:n]
        self.head = self.head[n:]
        self.left -= n
        return out


def make_tgz(path: Path, mib: int) -> None:
    with tarfile.open(path, "w:gz", compresslevel=9) as tf:
        for name, data in small_files().items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        info = tarfile.TarInfo("coll/a/bomb.mid")
        info.size = 4 + mib * CHUNK
        tf.addfile(info, _Zeros(info.size))


def serve(root: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), lambda *a, **k: Quiet(*a, directory=str(root), **k)
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mib", type=int, default=300, help="the bomb member's size in MiB")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="midiml-bomb-") as tmp:
        root = Path(tmp) / "served"
        root.mkdir()
        make_zip(root / "coll.zip", args.mib)
        make_tgz(root / "coll.tar.gz", args.mib)
        server, base = serve(root)
        try:
            for name in ("coll.zip", "coll.tar.gz"):
                archive = root / name
                sha = hashlib.sha256(archive.read_bytes()).hexdigest()
                cfg = {"kind": "url", "url": f"{base}/{name}", "sha256": sha, "top": "coll"}
                target = Path(tmp) / "raw" / name
                before = written()
                report = download_url_source(Source.from_config("web", cfg), target, False)
                wrote = written() - before
                for r in report["refused"]:
                    print(f"{name}: refused archive member {r['member']}: {r['reason']}")
                kept = sorted(p.relative_to(target).as_posix() for p in target.rglob("*.mid"))
                print(
                    json.dumps(
                        {
                            "archive": name,
                            "archive_bytes": archive.stat().st_size,
                            "bomb_member_bytes": 4 + args.mib * CHUNK,
                            "bytes_written_during_download": wrote,
                            "extracted": kept,
                        }
                    )
                )
        finally:
            server.shutdown()


if __name__ == "__main__":
    main()
