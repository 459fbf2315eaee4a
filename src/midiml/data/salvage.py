"""What a damaged track still holds: the events before the damage, and nothing invented.

The byte scan (:mod:`midiml.data.smf_scan`) stops at the first event it cannot read and says
where it starts. Events before it are well-formed, but not all of them are real: a byte
changed a little earlier can be read as plausible events (a data byte taken for a delta,
the stream then read out of step) until the reader trips over something impossible. So,
when a track broke on its own (not because the file or its chunk ended), the last
``SUSPECT_EVENTS`` events (and those within ``SUSPECT_BEATS`` beats) before the break are
searched for the signs of such a misreading: a note switched on and never off, a note
switched off that was never on, a delta written with a leading zero byte (no writer does
that), notes on a channel the track had not used. The track is cut before the first sign;
what stays is music of the undamaged file, and notes still sounding at the cut end there.

A track that ends because its chunk or the file ends (a download cut short) has no
misreading to fear: it keeps every complete event.

This is the rare path (a damaged file), so it is plain Python.
"""

from __future__ import annotations

from dataclasses import dataclass

SUSPECT_EVENTS = 48  # events before a break searched for signs of a misreading
SUSPECT_BEATS = 8  # ... and those within this many beats of it

_ON, _OFF, _OTHER = 1, 2, 0


def _vlq(buf: bytes, i: int) -> tuple[int, int, bool]:
    """(value, next position, written with a leading zero byte) of a well-formed number."""
    odd = buf[i] == 0x80
    value = 0
    while True:
        v = buf[i]
        i += 1
        value = (value << 7) | (v & 0x7F)
        if not v & 0x80:
            return value, i, odd


def walk(buf: bytes, start: int, stop: int) -> list[tuple[int, int, int, int, bool]]:
    """Events of ``buf[start:stop]``, which the scan found well-formed: one tuple each of
    (where it starts, its tick, on/off/other, channel * 128 + pitch, odd delta)."""
    events = []
    i, tick, status = start, 0, 0
    while i < stop:
        at = i
        delta, i, odd = _vlq(buf, i)
        tick += delta
        b = buf[i]
        if b & 0x80:
            i += 1
            if b < 0xF0:
                status = b
        else:
            b = status
        kind, key = _OTHER, 0
        if b >= 0xF0:
            if b == 0xFF:
                i += 1
            length, i, _ = _vlq(buf, i)
            i += length
        else:
            high = b >> 4
            n = 1 if high in (0xC, 0xD) else 2
            if high in (0x8, 0x9):
                key = (b & 0x0F) * 128 + buf[i]
                kind = _ON if high == 0x9 and buf[i + 1] > 0 else _OFF
            i += n
        events.append((at, tick, kind, key, odd))
    return events


def _open_notes(events: list[tuple[int, int, int, int, bool]]) -> dict[int, int]:
    """Notes still on after ``events``: key -> count (in the order first switched on)."""
    counts: dict[int, int] = {}
    for _, _, kind, key, _ in events:
        if kind == _ON:
            counts[key] = counts.get(key, 0) + 1
        elif kind == _OFF and counts.get(key, 0) > 0:
            counts[key] -= 1
    return {k: c for k, c in counts.items() if c}


def suspect_from(
    events: list[tuple[int, int, int, int, bool]], tpq: int, whole: bool = False
) -> int:
    """Index of the first event that looks misread near the end of ``events`` (a track that
    broke after them), or ``len(events)`` when none does. ``whole``: anywhere in the track
    (bytes were inserted somewhere in it), the channel sign left out (a type-0 track brings
    in its channels one by one)."""
    n = len(events)
    if not n:
        return 0
    lo = 0 if whole else max(n - SUSPECT_EVENTS, 0)
    last_tick = events[-1][1]
    while lo > 0 and events[lo - 1][1] >= last_tick - SUSPECT_BEATS * tpq:
        lo -= 1
    counts: dict[int, int] = {}
    channels = 0
    first = n
    opened_at: dict[int, list[int]] = {}
    for idx, (_, _, kind, key, odd) in enumerate(events):
        if idx >= lo and odd:
            first = min(first, idx)
            break
        if kind == _ON:
            if idx >= lo and not whole and channels and not channels >> (key // 128) & 1:
                first = min(first, idx)
                break
            channels |= 1 << (key // 128)
            counts[key] = counts.get(key, 0) + 1
            opened_at.setdefault(key, []).append(idx)
        elif kind == _OFF:
            if counts.get(key, 0) > 0:
                counts[key] -= 1
                opened_at[key].pop()
            elif idx >= lo:  # switched off, never on
                first = min(first, idx)
                break
    for starts in opened_at.values():  # switched on, never off (before the break)
        for idx in starts:
            if idx >= lo:
                first = min(first, idx)
    return first


@dataclass
class Kept:
    """A damaged track's body as kept, and what was lost."""

    body: bytes
    n_messages: int
    hanging: int  # notes closed at the cut
    channels: int  # bit c: channel c plays notes
    n_events: int  # events kept
    n_suspect: int  # well-formed events dropped as a likely misreading
    cut_at: int  # where in the file the kept events end


def keep_before(
    buf: bytes, start: int, stop: int, tpq: int, misread: bool, inserted: bool = False
) -> Kept:
    """The track ``buf[start:...]`` that broke at ``stop``: its events before the damage
    (all complete ones unless ``misread`` may have run before the break, or bytes were
    ``inserted`` anywhere before it), notes still on closed at the last kept event, and an
    end-of-track event."""
    events = walk(buf, start, stop)
    if inserted:
        k = suspect_from(events, tpq, whole=True)
    elif misread:
        k = suspect_from(events, tpq)
    else:
        k = len(events)
    kept = events[:k]
    cut_at = events[k][0] if k < len(events) else stop
    closing = bytearray()
    hanging = 0
    for key, count in _open_notes(kept).items():
        channel, pitch = divmod(key, 128)
        for _ in range(count):
            closing += bytes([0, 0x80 | channel, pitch, 0])
            hanging += 1
    channels = 0
    for _, _, kind, key, _ in kept:
        if kind == _ON:
            channels |= 1 << (key // 128)
    body = buf[start:cut_at] + bytes(closing) + b"\x00\xff\x2f\x00"
    return Kept(body, k + hanging + 1, hanging, channels, k, len(events) - k, cut_at)
