"""The per-event loop of the MIDI byte scan, in one source run two ways.

:func:`scan_track_events` is written in the subset of Python that numba compiles. Interpreted,
over ``bytes``, it costs nothing to start: right for a command reading one file. Compiled
(:func:`load_compiled`, over a uint8 array) it walks events about 100 times faster, but
loading numba and the machine code cached on disk costs about a second per process: right
for the ingest of many files. Both give the same answers because they are the same code
(tests/test_scan.py checks it on the malformed corpus and mutated files).
:func:`midiml.data.midi.scan_smf` turns the numbers into reasons and does the (rare)
rewrite of hanging notes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# What went wrong (0: nothing); midi.py maps each code to its reason string.
OK = 0
VLQ_PAST_END = 1  # a variable-length number runs past the end of its track
VLQ_TOO_LONG = 2  # a variable-length number longer than 4 bytes
TICK_OVERFLOW = 3  # the track runs past max_tick
PAST_END = 4  # an event runs past the end of its track
NO_RUNNING_STATUS = 5  # running status before any status byte
BAD_META = 6  # a meta event shorter than symusic reads; args: meta type, length
ZERO_TEMPO = 7  # a tempo of 0 microseconds per beat
BAD_STATUS = 8  # a system status byte other than sysex/meta; arg: the byte
DATA_OVER_127 = 9  # a data byte with its high bit set
IMPOSSIBLE_DELTA = 10  # one delta longer than max_delta (a damaged file's sign); arg: the delta

N_KEYS = 16 * 128  # (channel, pitch) pairs: key = channel * 128 + pitch


def scan_track_events(
    buf: Any, start: int, end: int, max_tick: int, max_delta: int, counts: Any, order: Any
) -> tuple[int, int, int, int, int, int]:
    """Walk one MTrk body ``buf[start:end]``, counting messages the way mido does.

    ``buf``: bytes, or a uint8 array when compiled. ``counts`` (N_KEYS entries, all -1: key
    never switched on) gets the notes still on at the end per (channel, pitch) key; ``order``
    gets the keys in the order of their first note-on. Returns (code, arg1, arg2, messages,
    where the end-of-track event starts or ``end``, number of keys in ``order``).
    """
    i = start
    tick = 0
    status = 0
    n_messages = 0
    n_order = 0
    while i < end:
        event_start = i
        delta = 0  # the delta time: a variable-length number of at most 4 bytes
        for k in range(5):
            if k == 4:
                return VLQ_TOO_LONG, 0, 0, n_messages, event_start, n_order
            if i >= end:
                return VLQ_PAST_END, 0, 0, n_messages, event_start, n_order
            v = buf[i]
            i += 1
            delta = (delta << 7) | (v & 0x7F)
            if not v & 0x80:
                break
        if delta > max_delta:
            return IMPOSSIBLE_DELTA, delta, 0, n_messages, event_start, n_order
        tick += delta
        if tick > max_tick:
            return TICK_OVERFLOW, 0, 0, n_messages, event_start, n_order
        if i >= end:
            return PAST_END, 0, 0, n_messages, event_start, n_order
        b = 0 + buf[i]  # a plain integer, not a uint8, in both modes
        if b & 0x80:
            i += 1
            if b < 0xF0:
                status = b
        elif status == 0:
            return NO_RUNNING_STATUS, 0, 0, n_messages, event_start, n_order
        else:
            b = status
        n_messages += 1
        if b >= 0xF0 and b != 0xFF and b != 0xF0 and b != 0xF7:
            return BAD_STATUS, b, 0, n_messages, event_start, n_order
        if b >= 0xF0:  # meta (type, length, data) or sysex (length, data)
            kind = -1
            if b == 0xFF:
                if i >= end:
                    return PAST_END, 0, 0, n_messages, event_start, n_order
                kind = 0 + buf[i]
                i += 1
            length = 0
            for k in range(5):
                if k == 4:
                    return VLQ_TOO_LONG, 0, 0, n_messages, event_start, n_order
                if i >= end:
                    return VLQ_PAST_END, 0, 0, n_messages, event_start, n_order
                v = buf[i]
                i += 1
                length = (length << 7) | (v & 0x7F)
                if not v & 0x80:
                    break
            if i + length > end:
                return PAST_END, 0, 0, n_messages, event_start, n_order
            if (
                (kind == 0x51 and length < 3)
                or (kind == 0x58 and length < 4)
                or (kind == 0x59 and length < 2)
            ):
                return BAD_META, kind, length, n_messages, event_start, n_order
            if kind == 0x51 and buf[i] == 0 and buf[i + 1] == 0 and buf[i + 2] == 0:
                return ZERO_TEMPO, 0, 0, n_messages, event_start, n_order
            i += length
            if kind == 0x2F:
                return OK, 0, 0, n_messages, event_start, n_order
        else:  # channel voice: one or two data bytes
            high = b >> 4
            n = 1 if high == 0xC or high == 0xD else 2
            if i + n > end:
                return PAST_END, 0, 0, n_messages, event_start, n_order
            if buf[i] > 127 or (n == 2 and buf[i + 1] > 127):
                return DATA_OVER_127, 0, 0, n_messages, event_start, n_order
            if high == 0x9 or high == 0x8:
                key = (b & 0x0F) * 128 + buf[i]
                if high == 0x9 and buf[i + 1] > 0:
                    if counts[key] < 0:  # the key's first note-on: remember the order
                        counts[key] = 0
                        order[n_order] = key
                        n_order += 1
                    counts[key] += 1
                elif counts[key] > 0:
                    counts[key] -= 1
            i += n
    return OK, 0, 0, n_messages, end, n_order


_compiled: Callable | None = None


def load_compiled() -> Callable:
    """:func:`scan_track_events` compiled by numba (machine code cached on disk)."""
    global _compiled
    if _compiled is None:
        import numpy as np
        from numba import njit  # deferred: importing numba alone takes a third of a second

        loop = njit(cache=True, nogil=True)(scan_track_events)
        # numba compiles (or loads from its cache) at the first call: do it now, on an
        # end-of-track event, with the argument types every later call has (read-only bytes)
        body = np.frombuffer(b"\x00\xff\x2f\x00", dtype=np.uint8)
        loop(body, 0, 4, 1, 1, np.full(N_KEYS, -1, dtype=np.int64), np.zeros(N_KEYS, np.int64))
        _compiled = loop
    return _compiled


def compiled_loaded() -> bool:
    """Whether this process has loaded the compiled loop (it is then the cheaper one)."""
    return _compiled is not None
