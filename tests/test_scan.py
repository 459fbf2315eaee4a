"""The byte scan's two ways of running its event loop give the same answers.

Interpreted (one file from the command line: no numba start-up) and compiled (the ingest):
the same source, checked here on the malformed corpus and seeded mutations of it, down to
the canonical bytes handed to symusic and every reason string.
"""

from __future__ import annotations

import random
import subprocess
import sys

from midiml.data import midi, smf_scan
from tests.malformed import CASES


def outcome(data: bytes) -> tuple:
    try:
        scan = midi.scan_smf(data)
    except midi._Bad as exc:
        return ("refused", str(exc))
    return ("read", scan.data, scan.n_tracks, scan.n_messages, scan.hanging_notes)


def mutations(n: int, seed: int = 0) -> list[bytes]:
    """``n`` damaged copies of the small corpus cases: bytes changed, cut, inserted."""
    rng = random.Random(seed)
    bases = [make() for make in CASES.values()]
    bases = [b for b in bases if 0 < len(b) < 20_000]
    out = []
    for _ in range(n):
        data = bytearray(rng.choice(bases))
        where = rng.randrange(len(data))
        op = rng.randrange(4)
        if op == 0:
            for _ in range(rng.randint(1, 4)):
                data[rng.randrange(len(data))] = rng.randrange(256)
        elif op == 1:
            del data[where:]
        elif op == 2:
            data[where:where] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 6)))
        else:  # note-offs become controller changes: notes left hanging
            for i in range(where, len(data)):
                if 0x80 <= data[i] <= 0x8F:
                    data[i] = 0xB0 | (data[i] & 0x0F)
        out.append(bytes(data))
    return out


def test_compiled_and_interpreted_scans_agree(monkeypatch):
    inputs = [make() for make in CASES.values()] + mutations(400)
    monkeypatch.setattr(smf_scan, "_compiled", None)  # interpreted, whatever ran before
    interpreted = [outcome(d) for d in inputs]
    monkeypatch.undo()
    midi.use_compiled_scan()
    assert smf_scan.compiled_loaded()
    compiled = [outcome(d) for d in inputs]
    assert compiled == interpreted
    kinds = {o[0] for o in interpreted}
    reasons = {o[1].split(" in track")[0] for o in interpreted if o[0] == "refused"}
    assert kinds == {"read", "refused"} and len(reasons) > 10  # the mutations reach the loop
    assert any(o[0] == "read" and o[4] for o in interpreted)  # hanging notes rewritten


def test_reading_one_file_does_not_start_numba(tmp_path):
    """A command reading one file stays quick: numba alone takes a third of a second to load."""
    path = tmp_path / "one.mid"
    path.write_bytes(CASES["running_status.mid"]())
    code = (
        "import sys; from midiml.data.midi import read_user_file; "
        f"read_user_file({str(path)!r}); print('numba' in sys.modules)"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert res.stdout.strip() == "False"
