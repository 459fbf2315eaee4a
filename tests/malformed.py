"""A corpus of malformed (and merely unusual) MIDI files, written byte by byte.

Each case is raw bytes so that the tests can produce what no MIDI library would write:
broken headers, lying chunk lengths, zero ticks per beat, hanging notes, huge delta times.
``write_corpus(folder)`` writes every case and returns {case name: path}.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Callable
from pathlib import Path


def vlq(value: int) -> bytes:
    """A MIDI variable-length quantity (7 bits per byte, high bit = more follows)."""
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))


def header(fmt: int = 0, ntracks: int = 1, division: int = 480, length: int = 6) -> bytes:
    return b"MThd" + struct.pack(">IHHH", length, fmt, ntracks, division)


def track(body: bytes, length: int | None = None) -> bytes:
    return b"MTrk" + struct.pack(">I", len(body) if length is None else length) + body


def end_of_track(delta: int = 0) -> bytes:
    return vlq(delta) + b"\xff\x2f\x00"


def tempo(us_per_quarter: int, delta: int = 0) -> bytes:
    return vlq(delta) + b"\xff\x51\x03" + us_per_quarter.to_bytes(3, "big")


def notes_body(
    n: int = 8, step: int = 480, channel: int = 0, pitch0: int = 60, first_delta: int = 0
) -> bytes:
    """``n`` consecutive notes, each ``step`` ticks long, switched on and off properly."""
    out = bytearray()
    for i in range(n):
        p = pitch0 + i % 12
        out += vlq(first_delta if i == 0 else 0) + bytes([0x90 | channel, p, 80])
        out += vlq(step) + bytes([0x80 | channel, p, 0])
    return bytes(out)


def simple(n: int = 8, division: int = 480, fmt: int = 0, body: bytes | None = None) -> bytes:
    body = tempo(500_000) + (notes_body(n) if body is None else body) + end_of_track()
    return header(fmt, 1, division) + track(body)


def _running_status() -> bytes:
    body = bytearray(tempo(500_000) + b"\x00\x90")  # one status byte for all that follows
    for i in range(8):
        body += bytes([60 + i, 80]) + vlq(240) + bytes([60 + i, 0]) + vlq(0)
    body = bytes(body[:-1])  # the last delta belongs to end_of_track
    return header() + track(body + end_of_track())


def _hanging() -> bytes:
    body = tempo(500_000)
    for i in range(4):  # switched on, never off: closed at the end of the track
        body += vlq(0 if i == 0 else 480) + bytes([0x90, 60 + i, 80])
    return header() + track(body + end_of_track(960))


def _drums_only() -> bytes:
    return simple(body=notes_body(16, 120, channel=9, pitch0=36))


def _absurd_length() -> bytes:
    body = tempo(500_000) + notes_body(2) + vlq(0x0FFFFFFF) + bytes([0x90, 60, 80])
    body += vlq(0x0FFFFFFF) + bytes([0x80, 60, 0])
    return header() + track(body + end_of_track())


def _many_notes(n: int = 200_000) -> bytes:
    return simple(body=notes_body(n, 12))


def _tempo_every_tick(n: int = 20_000) -> bytes:
    body = bytearray(tempo(500_000))
    body += b"\x00\x90\x3c\x50"
    for i in range(n):
        body += tempo(400_000 + (i % 200) * 1000, delta=1)
    body += b"\x00\x80\x3c\x00"
    return header() + track(bytes(body) + end_of_track())


def _two_tracks_type0() -> bytes:
    body = tempo(500_000) + notes_body(4) + end_of_track()
    return header(0, 2) + track(body) + track(body)


def _huge_deltas_overflow() -> bytes:
    body = bytearray(tempo(500_000))
    for i in range(40):  # 40 × 2^28 ticks overflows 32-bit tick counters
        body += vlq(0x0FFFFFFF) + bytes([0x90, 60 + i % 12, 80])
        body += vlq(10) + bytes([0x80, 60 + i % 12, 0])
    return header() + track(bytes(body) + end_of_track())


def _smpte() -> bytes:
    division = (0x100 - 25) << 8 | 40  # -25 frames per second, 40 ticks per frame
    return simple(division=division)


def _note_off_before_on() -> bytes:
    body = tempo(500_000) + b"\x00\x80\x3c\x00" + notes_body(4)
    return simple(body=body)


def _sysex_unterminated() -> bytes:
    body = tempo(500_000) + notes_body(2) + b"\x00\xf0\x7f\x7f\x7f"
    return header() + track(body)


def _meta_length_lies() -> bytes:
    body = tempo(500_000) + notes_body(2) + b"\x00\xff\x01" + vlq(10_000_000) + b"abc"
    return header() + track(body + end_of_track())


def _status_missing() -> bytes:
    return header() + track(b"\x00\x3c\x50" + notes_body(2) + end_of_track())


def _zero_velocity_only() -> bytes:
    body = b"".join(vlq(10) + bytes([0x90, 60 + i, 0]) for i in range(8))
    return simple(body=body)


def _many_tracks(n: int = 3000) -> bytes:
    body = notes_body(1) + end_of_track()
    return header(1, n) + track(tempo(500_000) + end_of_track()) + track(body) * (n - 1)


def _chunk(kind: bytes, body: bytes) -> bytes:
    return kind + struct.pack(">I", len(body)) + body


def _random_after_header() -> bytes:
    rng = random.Random(7)
    return header() + bytes(rng.randrange(256) for _ in range(4000))


def _random_tracks() -> bytes:
    rng = random.Random(11)
    body = bytes(rng.randrange(256) for _ in range(4000))
    return header() + track(body)


def meta(kind: int, data: bytes, delta: int = 0) -> bytes:
    return vlq(delta) + bytes([0xFF, kind]) + vlq(len(data)) + data


def _same_onset(n: int = 10_000) -> bytes:
    ons = b"".join(bytes([0, 0x90, 40 + i % 60, 80]) for i in range(n))
    offs = b"".join(bytes([0x80, 40 + i % 60, 0, 0]) for i in range(n))[:-1]
    return simple(body=ons + vlq(100) + offs)


def _zero_durations() -> bytes:
    return simple(
        body=b"".join(vlq(10) + b"\x90\x3c\x50" + vlq(0) + b"\x80\x3c\x00" for _ in range(50))
    )


CASES: dict[str, Callable[[], bytes]] = {
    "empty.mid": lambda: b"",
    "not_midi.mid": lambda: b"This is a text file, not a MIDI file.\n" * 20,
    "truncated_header.mid": lambda: header()[:9],
    "truncated_track.mid": lambda: simple(64)[:200],
    "bad_chunk_length.mid": lambda: header() + track(notes_body(4) + end_of_track(), 0x7FFFFFF0),
    "zero_ticks_per_beat.mid": lambda: simple(division=0),
    "zero_tracks.mid": lambda: header(1, 0),
    "more_tracks_claimed.mid": lambda: header(1, 5) + track(notes_body(4) + end_of_track()),
    "random_after_header.mid": _random_after_header,
    "random_track_body.mid": _random_tracks,
    "data_byte_over_127.mid": lambda: simple(body=b"\x00\x90\xbc\xd0" + notes_body(4)),
    "type2.mid": lambda: header(2, 2) + track(notes_body(4) + end_of_track()) * 2,
    "running_status.mid": _running_status,
    "hanging_notes.mid": _hanging,
    "no_notes.mid": lambda: simple(body=b""),
    "drums_only.mid": _drums_only,
    "absurd_length.mid": _absurd_length,
    "notes_200k.mid": _many_notes,
    "tempo_every_tick.mid": _tempo_every_tick,
    "unicode name with spaces é♪.mid": lambda: simple(12),
    # further cases of our own
    "tempo_zero.mid": lambda: simple(body=tempo(0) + notes_body(8)),
    "huge_deltas_overflow.mid": _huge_deltas_overflow,
    "smpte_division.mid": _smpte,
    "header_length_lies.mid": lambda: header(length=0x7FFFFFFF) + track(notes_body(2)),
    "header_long_length.mid": lambda: header(length=10) + b"\0\0\0\0" + track(notes_body(2)),
    "format_99.mid": lambda: header(99) + track(notes_body(4) + end_of_track()),
    "type0_two_tracks.mid": _two_tracks_type0,
    "note_off_before_on.mid": _note_off_before_on,
    "sysex_unterminated.mid": _sysex_unterminated,
    "meta_length_lies.mid": _meta_length_lies,
    "status_byte_missing.mid": _status_missing,
    "zero_velocity_only.mid": _zero_velocity_only,
    "many_tracks.mid": _many_tracks,
    "riff_wrapped.mid": lambda: b"RIFF" + struct.pack("<I", 4 + 80) + b"RMID" + simple(4),
    "trailing_garbage.mid": lambda: simple(8) + b"\xde\xad\xbe\xef" * 100,
    "only_magic.mid": lambda: b"MThd",
    "track_without_eot.mid": lambda: header() + track(tempo(500_000) + notes_body(6)),
    "unknown_chunk.mid": lambda: (
        header() + b"XFIH" + struct.pack(">I", 4) + b"abcd" + simple(4)[14:]
    ),
    "tempo_meta_too_short.mid": lambda: simple(body=meta(0x51, b"\x07") + notes_body(4)),
    "time_signature_empty.mid": lambda: simple(body=meta(0x58, b"") + notes_body(4)),
    "key_signature_empty.mid": lambda: simple(body=meta(0x59, b"") + notes_body(4)),
    "time_signature_2^255.mid": lambda: simple(
        body=meta(0x58, bytes([4, 255, 24, 8])) + notes_body(4)
    ),
    "track_name_bad_utf8.mid": lambda: simple(body=meta(0x03, b"\xff\xfe\xc3(") + notes_body(4)),
    "text_3MB.mid": lambda: simple(body=meta(0x01, b"a" * 3_000_000) + notes_body(4)),
    "tempo_1us.mid": lambda: simple(body=tempo(1) + notes_body(8)),
    "tempo_max.mid": lambda: simple(body=tempo(0xFFFFFF) + notes_body(8)),
    "same_onset_10k.mid": _same_onset,
    "zero_durations.mid": _zero_durations,
    "note_on_twice.mid": lambda: simple(body=b"\x00\x90\x3c\x40\x00\x90\x3c\x40\x10\x80\x3c\x00"),
    "events_after_end_of_track.mid": lambda: (
        header() + track(tempo(500_000) + notes_body(2) + end_of_track() + notes_body(4))
    ),
    "empty_track_first.mid": lambda: (
        header(1, 2) + track(b"") + track(notes_body(4) + end_of_track())
    ),
    "sixteen_channels.mid": lambda: simple(
        body=b"".join(notes_body(2, channel=c) for c in range(16))
    ),
    "quotes 'and' $dollar;.mid": lambda: simple(6),
    "too_large.mid": lambda: b"MThd" + b"\x00" * (9 * 1024 * 1024),
}


def write_corpus(folder: Path) -> dict[str, Path]:
    """Write every case into ``folder``; return {case name: file path}."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, make in CASES.items():
        path = folder / name
        path.write_bytes(make())
        out[name] = path
    return out


# Damage of the kinds a real collection meets (issue 33): seeded, one kind per copy.
DAMAGE_KINDS = ("flip", "truncate", "repeat", "insert", "zero", "length", "meta")


def damage(data: bytes, rng: random.Random, kind: str | None = None) -> tuple[bytes, str]:
    """A damaged copy of ``data`` and the kind of damage: bytes flipped, the file cut short,
    a run of bytes repeated, inserted or zeroed, a track's length field rewritten, or stray
    meta-event bytes. Positions fall anywhere after the 14-byte header."""
    kind = kind or rng.choice(DAMAGE_KINDS)
    out = bytearray(data)
    lo = min(14, len(out) - 1)

    def where() -> int:
        return rng.randrange(lo, len(out))

    if kind == "flip":
        for _ in range(rng.randint(1, 4)):
            out[where()] = rng.randrange(256)
    elif kind == "truncate":
        del out[where() :]
    elif kind == "repeat":
        at, n = where(), rng.randint(1, 64)
        out[at:at] = out[at : at + n]
    elif kind == "insert":
        at = where()
        out[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
    elif kind == "zero":
        at, n = where(), rng.randint(1, 64)
        out[at : at + n] = bytes(len(out[at : at + n]))
    elif kind == "length":
        starts = [i for i in range(len(out)) if out[i : i + 4] == b"MTrk"] or [where()]
        at = rng.choice(starts) + 4
        old = int.from_bytes(out[at : at + 4], "big")
        new = rng.choice([rng.randrange(2**32), max(old + rng.randint(-64, 64), 0)])
        out[at : at + 4] = new.to_bytes(4, "big")
    elif kind == "meta":
        at = where()
        stray = bytes([0xFF, rng.randrange(256)]) + bytes(
            rng.randrange(256) for _ in range(rng.randint(0, 6))
        )
        out[at:at] = stray
    else:
        raise ValueError(f"unknown damage {kind!r}")
    return bytes(out), kind
