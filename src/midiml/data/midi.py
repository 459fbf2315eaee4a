"""Parse one MIDI file into note events (one row per note) and a one-row file summary.

Every file, whether the ingest stage or a ``midiml`` command reads it, goes through one path:
:func:`check_columns` (:func:`read_checked` as a table). A scan of the raw bytes
(:func:`scan_smf`) checks the structure, counts tracks and messages, and closes notes that are
switched on and never off at the end of their track (symusic would drop them); it hands
symusic a canonical file, which reads the notes, tempo map and time signatures fast (seconds
come from the tempo map in float64, vectorised). :class:`Rules` then says whether a readable
file is usable. Bad files raise :class:`MidiParseError` with one short reason, the same string
in the file table and on the command line.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import symusic

NOTE_COLUMNS = {
    "file_id": "string",
    "track": "int16",
    "program": "int16",
    "is_drum": "bool",
    "pitch": "int16",
    "velocity": "int16",
    "onset_s": "float64",
    "duration_s": "float64",
    "onset_beats": "float64",
    "duration_beats": "float64",
}


MAX_FILE_BYTES = 8 * 1024 * 1024  # bounds the work per file; real MIDI files are far smaller
MAX_TRACKS = 4096  # real files have tens; the note table stores track numbers in 16 bits
MAX_TICK = 2**31 - 1  # symusic counts ticks in 32 bits
# Data bytes each channel-voice status takes (0x80 note off ... 0xE0 pitch bend).
_DATA_BYTES = {0x8: 2, 0x9: 2, 0xA: 2, 0xB: 2, 0xC: 1, 0xD: 1, 0xE: 2}
# Meta events symusic decodes by fixed offsets: shorter ones would be read past their end.
_META_MIN_LENGTH = {0x51: 3, 0x58: 4, 0x59: 2}
_META_NAMES = {0x51: "tempo", 0x58: "time signature", 0x59: "key signature"}


class MidiParseError(ValueError):
    """The file cannot be used; ``reason`` is one short phrase, the message names the file."""

    def __init__(self, path: str | Path, reason: str, info: dict | None = None) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason
        self.info = info or {}  # the file summary when the file was readable but unusable


class _Bad(Exception):
    """A structural problem found by the scan; its message is the reason."""


@dataclass(frozen=True)
class Rules:
    """When a readable file is still unusable (``data.max_length_s``, ``data.min_notes``).

    The defaults are conf/data's; the CLI uses them, the ingest stage passes the params.
    """

    max_length_s: float = 3600.0
    min_notes: int = 1

    def reason(self, info: dict) -> str | None:
        if info["n_notes"] < self.min_notes:
            return "no notes" if info["n_notes"] == 0 else f"fewer than {self.min_notes} notes"
        if not np.isfinite(info["length_s"]) or info["length_s"] > self.max_length_s:
            return f"absurd length: {info['length_s']:.1f} s > {self.max_length_s:.0f} s"
        return None


@dataclass
class Scan:
    """What the byte scan learnt: a canonical file for symusic and the raw counts."""

    data: bytes
    n_tracks: int
    n_messages: int
    hanging_notes: int


def _vlq(buf: bytes, i: int, end: int) -> tuple[int, int]:
    value = 0
    for _ in range(4):
        if i >= end:
            raise _Bad("event runs past the end of its track")
        b = buf[i]
        i += 1
        value = (value << 7) | (b & 0x7F)
        if not b & 0x80:
            return value, i
    raise _Bad("variable-length number longer than 4 bytes")


def _scan_track(buf: bytes, start: int, end: int, number: int) -> tuple[bytes, int, int]:
    """Check one MTrk body; return (body with hanging notes closed, messages, hanging notes)."""
    i, tick, status, n_messages = start, 0, 0, 0
    open_notes: dict[tuple[int, int], int] = {}
    eot_at = end  # where the end-of-track event starts (its delta included)
    while i < end:
        event_start = i
        delta, i = _vlq(buf, i, end)
        tick += delta
        if tick > MAX_TICK:
            raise _Bad(f"absurd length: track {number} runs past 2^31 ticks")
        if i >= end:
            raise _Bad(f"event runs past the end of track {number}")
        b = buf[i]
        if b & 0x80:
            i += 1
            if b < 0xF0:
                status = b
        elif status == 0:
            raise _Bad(f"running status without a status byte in track {number}")
        else:
            b = status
        n_messages += 1
        if b == 0xFF:  # meta event: type, length, data
            if i >= end:
                raise _Bad(f"event runs past the end of track {number}")
            kind = buf[i]
            length, i = _vlq(buf, i + 1, end)
            if i + length > end:
                raise _Bad(f"event runs past the end of track {number}")
            if length < _META_MIN_LENGTH.get(kind, 0):
                raise _Bad(f"bad {_META_NAMES[kind]} event (length {length}) in track {number}")
            if kind == 0x51 and int.from_bytes(buf[i : i + 3], "big") == 0:
                raise _Bad("tempo of 0 microseconds per beat")
            i += length
            if kind == 0x2F:
                eot_at = event_start
                break
        elif b in (0xF0, 0xF7):  # sysex: length, data
            length, i = _vlq(buf, i, end)
            if i + length > end:
                raise _Bad(f"event runs past the end of track {number}")
            i += length
        elif b >= 0xF0:
            raise _Bad(f"unexpected status byte 0x{b:02X} in track {number}")
        else:
            n = _DATA_BYTES[b >> 4]
            if i + n > end:
                raise _Bad(f"event runs past the end of track {number}")
            data = buf[i : i + n]
            if any(x > 127 for x in data):
                raise _Bad(f"data byte > 127 in track {number}")
            i += n
            kind = b >> 4
            if kind == 0x9 and data[1] > 0:
                key = (b & 0x0F, data[0])
                open_notes[key] = open_notes.get(key, 0) + 1
            elif (kind == 0x8 or kind == 0x9) and open_notes.get((b & 0x0F, data[0])):
                open_notes[(b & 0x0F, data[0])] -= 1
    hanging = sum(open_notes.values())
    if not hanging:
        return buf[start:end], n_messages, 0
    # Close each hanging note at the track's last tick: the end-of-track delta, then note-offs.
    closing = bytearray()
    if eot_at < end:
        delta, after = _vlq(buf, eot_at, end)
        closing += buf[eot_at:after]
    else:
        closing += b"\x00"
    first = True
    for (channel, pitch), count in open_notes.items():
        for _ in range(count):
            if not first:
                closing += b"\x00"
            closing += bytes([0x80 | channel, pitch, 0])
            first = False
    closing += b"\x00\xff\x2f\x00"
    return buf[start:eot_at] + bytes(closing), n_messages, hanging


def scan_smf(buf: bytes) -> Scan:
    """Check a Standard MIDI File's structure; raise _Bad with the reason when it is broken."""
    if not buf:
        raise _Bad("empty file")
    if len(buf) > MAX_FILE_BYTES:
        raise _Bad(f"too large: {len(buf) / 2**20:.1f} MiB > {MAX_FILE_BYTES / 2**20:.0f} MiB")
    if buf[:4] == b"RIFF" and b"MThd" in buf[:64]:  # RMID: a MIDI file inside a RIFF wrapper
        buf = buf[buf.index(b"MThd") :]
    if buf[:4] != b"MThd":
        raise _Bad("not a MIDI file (no MThd header)")
    if len(buf) < 14:
        raise _Bad("truncated header")
    hlen, fmt, ntracks, division = struct.unpack(">IHHH", buf[4:14])
    if hlen < 6 or 8 + hlen > len(buf):
        raise _Bad(f"bad header length {hlen}")
    if fmt > 2:
        raise _Bad(f"unknown MIDI format {fmt}")
    if division == 0:
        raise _Bad("zero ticks per beat")
    if division & 0x8000:
        raise _Bad("SMPTE time division (not supported)")
    if ntracks == 0:
        raise _Bad("no tracks")
    if ntracks > MAX_TRACKS:
        raise _Bad(f"too many tracks: {ntracks} > {MAX_TRACKS}")
    i, tracks, n_messages, hanging = 8 + hlen, [], 0, 0
    while len(tracks) < ntracks and i + 8 <= len(buf):
        kind, length = buf[i : i + 4], int.from_bytes(buf[i + 4 : i + 8], "big")
        body = i + 8
        if body + length > len(buf):
            raise _Bad(
                f"truncated track {len(tracks)}: chunk says {length} bytes, {len(buf) - body} left"
            )
        if kind == b"MTrk":
            out, n, h = _scan_track(buf, body, body + length, len(tracks))
            tracks.append(out)
            n_messages += n
            hanging += h
        elif not kind.isalnum():  # unknown chunks are skipped, garbage is not a chunk
            raise _Bad(f"bad chunk after track {len(tracks)}")
        i = body + length
    if len(tracks) < ntracks:
        raise _Bad(f"truncated file: header says {ntracks} tracks, found {len(tracks)}")
    canonical = b"MThd" + struct.pack(">IHHH", 6, min(fmt, 1), len(tracks), division)
    canonical += b"".join(b"MTrk" + struct.pack(">I", len(t)) + t for t in tracks)
    return Scan(canonical, len(tracks), n_messages, hanging)


@dataclass
class ParsedMidi:
    notes: pd.DataFrame
    info: dict[str, Any] = field(default_factory=dict)


def empty_notes() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in NOTE_COLUMNS.items()})


def _tempo_stats(score: symusic.Score, end_tick: int) -> dict[str, float]:
    """Time-weighted mean/std of the tempo (quarter notes per minute) and its change count."""
    raw = score.tempos.numpy()  # vectorised: some files carry tens of thousands of tempo events
    if not len(raw["time"]):
        return {"qpm_mean": 120.0, "qpm_std": 0.0, "n_tempo_changes": 0}
    order = np.argsort(raw["time"], kind="stable")
    ticks = raw["time"][order].astype(float)
    qpm = 60_000_000.0 / raw["mspq"][order].astype(float)
    times = np.append(ticks, max(end_tick, ticks[-1]))
    weights = np.diff(times)
    total = weights.sum()
    if total <= 0:
        weights, total = np.ones_like(qpm), float(len(qpm))
    mean = float((qpm * weights).sum() / total)
    std = float(np.sqrt(((qpm - mean) ** 2 * weights).sum() / total))
    changes = int(np.count_nonzero(np.abs(np.diff(qpm)) > 1e-6))
    return {"qpm_mean": mean, "qpm_std": std, "n_tempo_changes": changes}


def tick_to_seconds(score: symusic.Score, tpq: int) -> Callable[[np.ndarray], np.ndarray]:
    """Ticks -> seconds through the tempo map, vectorised (float64; symusic's own seconds
    conversion is float32 and costs as much as the parse). Before the first tempo event,
    and in files without one, MIDI's default 120 qpm applies; of several tempo events at
    one tick the last wins."""
    raw = score.tempos.numpy()
    order = np.argsort(raw["time"], kind="stable")
    ticks = raw["time"][order].astype(np.int64)
    mspq = raw["mspq"][order].astype(np.float64)
    if not len(ticks) or ticks[0] > 0:
        ticks, mspq = np.append(0, ticks), np.append(500_000.0, mspq)
    sec_per_tick = mspq / 1e6 / tpq
    start_s = np.concatenate([[0.0], np.cumsum(np.diff(ticks) * sec_per_tick[:-1])])

    def convert(t: np.ndarray) -> np.ndarray:
        if len(ticks) == 1:  # one tempo (most files): no lookup, the same numbers
            return start_s[0] + (t - ticks[0]) * sec_per_tick[0]
        k = np.searchsorted(ticks, t, side="right") - 1
        return start_s[k] + (t - ticks[k]) * sec_per_tick[k]

    return convert


def _columns(score: symusic.Score, scan: Scan, path: Path) -> tuple[dict[str, np.ndarray], dict]:
    """Note columns (numpy, sorted by onset, pitch, track) and the file summary of a score."""
    if len(score.tracks) > MAX_TRACKS:
        raise MidiParseError(
            path, f"unreadable MIDI: too many tracks: {len(score.tracks)} > {MAX_TRACKS}"
        )
    tpq = max(int(score.ticks_per_quarter), 1)
    to_seconds = tick_to_seconds(score, tpq)
    # all tracks' notes at once: numpy calls per file, not per track (ingest runs this per file)
    tracks = [(i, t, t.notes.numpy()) for i, t in enumerate(score.tracks) if t.note_num()]
    counts = [len(nt["time"]) for _, _, nt in tracks]

    def joined(key: str) -> np.ndarray:
        return np.concatenate([nt[key] for _, _, nt in tracks]) if tracks else np.zeros(0)

    def per_track(values: list, dtype: type) -> np.ndarray:
        return np.repeat(np.array(values, dtype=dtype), counts)

    ticks, dur = joined("time").astype(np.int64), joined("duration").astype(np.int64)
    seconds = to_seconds(np.concatenate([ticks, ticks + dur]))
    onset_s = seconds[: len(ticks)]
    cols = {
        "track": per_track([i for i, _, _ in tracks], np.int16),
        "program": per_track([t.program for _, t, _ in tracks], np.int16),
        "is_drum": per_track([bool(t.is_drum) for _, t, _ in tracks], bool),
        "pitch": joined("pitch").astype(np.int16),
        "velocity": joined("velocity").astype(np.int16),
        "onset_s": onset_s,
        "duration_s": seconds[len(ticks) :] - onset_s,
        "onset_beats": ticks.astype(np.float64) / tpq,
        "duration_beats": dur.astype(np.float64) / tpq,
    }
    n_notes = len(cols["pitch"])
    if n_notes:
        # by onset, pitch, track: seconds grow with ticks, so one integer key sorts the same
        key = (ticks * 128 + cols["pitch"]) * (len(score.tracks) + 1) + cols["track"]
        order = np.argsort(key, kind="stable")
        cols = {c: v[order] for c, v in cols.items()}
        if not np.isfinite(cols["onset_s"]).all() or not np.isfinite(cols["duration_s"]).all():
            raise MidiParseError(path, "note times are not finite")
    ts_first = score.time_signatures[0] if len(score.time_signatures) else None
    end = int(score.end())
    info = {
        "length_s": float(to_seconds(np.array([end]))[0]) if n_notes or end else 0.0,
        "n_tracks": scan.n_tracks,
        "n_messages": scan.n_messages,
        "n_notes": n_notes,
        "ticks_per_quarter": tpq,
        "ts_numerator": int(ts_first.numerator) if ts_first else 4,
        "ts_denominator": int(ts_first.denominator) if ts_first else 4,
        "n_timesig_changes": max(len(score.time_signatures) - 1, 0),
        **_tempo_stats(score, end),
        "hanging_notes": scan.hanging_notes,
    }
    return cols, info


def parse_columns(
    path: str | Path, data: bytes | None = None
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read ``path`` (or its bytes ``data``) into note columns (numpy, no file_id) and a summary.

    Raises MidiParseError (naming the file, with one short reason) when it cannot be read.
    No pandas here: ingest calls this once per file.
    """
    path = Path(path)
    try:
        if data is None:
            size = path.stat().st_size
            if size > MAX_FILE_BYTES:  # do not even read it
                raise _Bad(f"too large: {size / 2**20:.1f} MiB > {MAX_FILE_BYTES / 2**20:.0f} MiB")
            data = path.read_bytes()
        scan = scan_smf(data)
    except _Bad as exc:  # "unreadable MIDI: <what>" groups in the file table
        reason = str(exc)
        if not reason.startswith("absurd length"):
            reason = f"unreadable MIDI: {reason}"
        raise MidiParseError(path, reason) from None
    except OSError as exc:
        raise MidiParseError(path, f"cannot read ({exc.strerror or type(exc).__name__})") from None
    try:
        score = symusic.Score.from_midi(scan.data)
    except Exception as exc:  # symusic's checks are stricter than the scan in places
        raise MidiParseError(path, f"unreadable MIDI: {str(exc).splitlines()[0][:120]}") from None
    try:
        return _columns(score, scan, path)
    except MidiParseError:
        raise
    except Exception as exc:  # a safety net: an odd file must never crash a command
        raise MidiParseError(path, f"unreadable MIDI: {type(exc).__name__}: {exc}") from None


def check_columns(
    path: str | Path, rules: Rules | None = None, data: bytes | None = None
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The one way every file is read and judged: parse, then apply ``rules``.

    Raises MidiParseError (with the file summary when the file was readable) if unusable.
    """
    cols, info = parse_columns(path, data)
    reason = (rules or Rules()).reason(info)
    if reason:
        raise MidiParseError(path, reason, info)
    return cols, info


def notes_frame(cols: dict[str, np.ndarray], file_id: str) -> pd.DataFrame:
    """Note columns from ``parse_columns`` as the notes table's frame for one file."""
    n = len(cols["pitch"])
    df = pd.DataFrame({"file_id": np.full(n, file_id, dtype=object), **cols})
    return df.astype(NOTE_COLUMNS)


def parse_midi(path: str | Path, file_id: str | None = None) -> ParsedMidi:
    """Read ``path``; raise MidiParseError (naming the file) when it cannot be read."""
    cols, info = parse_columns(path)
    return ParsedMidi(notes=notes_frame(cols, file_id or Path(path).name), info=info)


def read_checked(
    path: str | Path, rules: Rules | None = None, file_id: str | None = None
) -> ParsedMidi:
    """:func:`check_columns` as a note table (what the CLI and tests use)."""
    cols, info = check_columns(path, rules)
    return ParsedMidi(notes=notes_frame(cols, file_id or Path(path).name), info=info)


def read_user_file(path: str | Path, rules: Rules | None = None) -> ParsedMidi:
    """A MIDI file handed to the CLI: checked with the ingest stage's rules, named by its path."""
    path = Path(path)
    if path.is_dir():
        raise MidiParseError(path, "is a folder, not a MIDI file")
    if not path.is_file():
        raise MidiParseError(path, "no such file")
    return read_checked(path, rules, str(path))
