"""Parse one MIDI file into note events (one row per note) and a one-row file summary.

Every file, whether the ingest stage or a ``midiml`` command reads it, goes through one
path: :func:`read_checked`. A pure-Python scan of the raw bytes (:func:`scan_smf`) checks the
structure, counts tracks and messages, and closes notes that are switched on and never off at
the end of their track (symusic would drop them); it hands symusic a canonical file, which
reads the notes, tempo map and time signatures fast. :class:`Rules` then says whether a
readable file is usable. Bad files raise :class:`MidiParseError` with one short reason, the
same string in the file table and on the command line.
"""

from __future__ import annotations

import struct
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
    tempos = sorted(((t.time, t.qpm) for t in score.tempos), key=lambda x: x[0])
    if not tempos:
        return {"qpm_mean": 120.0, "qpm_std": 0.0, "n_tempo_changes": 0}
    times = np.array([t for t, _ in tempos] + [max(end_tick, tempos[-1][0])], dtype=float)
    qpm = np.array([q for _, q in tempos], dtype=float)
    weights = np.diff(times)
    if weights.sum() <= 0:
        weights = np.ones_like(qpm)
    mean = float(np.average(qpm, weights=weights))
    std = float(np.sqrt(np.average((qpm - mean) ** 2, weights=weights)))
    changes = int(np.count_nonzero(np.abs(np.diff(qpm)) > 1e-6))
    return {"qpm_mean": mean, "qpm_std": std, "n_tempo_changes": changes}


def parse_midi(path: str | Path, file_id: str | None = None) -> ParsedMidi:
    """Read ``path``; raise MidiParseError (naming the file) when it cannot be read."""
    path = Path(path)
    file_id = file_id or path.name
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:  # do not even read it
            raise _Bad(f"too large: {size / 2**20:.1f} MiB > {MAX_FILE_BYTES / 2**20:.0f} MiB")
        scan = scan_smf(path.read_bytes())
    except _Bad as exc:  # "unreadable MIDI: <what>" groups in the file table, like ingest did
        reason = str(exc)
        if not reason.startswith("absurd length"):
            reason = f"unreadable MIDI: {reason}"
        raise MidiParseError(path, reason) from None
    except OSError as exc:
        raise MidiParseError(path, f"cannot read ({exc.strerror or type(exc).__name__})") from None
    try:
        score = symusic.Score.from_midi(scan.data)
        seconds = score.to("second")
    except Exception as exc:  # symusic's checks are stricter than the scan in places
        raise MidiParseError(path, f"unreadable MIDI: {str(exc).splitlines()[0][:120]}") from None
    try:
        return _read_score(score, seconds, scan, file_id, path)
    except MidiParseError:
        raise
    except Exception as exc:  # a safety net: an odd file must never crash a command
        raise MidiParseError(path, f"unreadable MIDI: {type(exc).__name__}: {exc}") from None


def _read_score(
    score: symusic.Score, seconds: symusic.Score, scan: Scan, file_id: str, path: Path
) -> ParsedMidi:
    """Note table and file summary from symusic's ticks and seconds views of one file."""
    n_messages, n_tracks = scan.n_messages, scan.n_tracks
    if len(score.tracks) > MAX_TRACKS:
        raise MidiParseError(
            path, f"unreadable MIDI: too many tracks: {len(score.tracks)} > {MAX_TRACKS}"
        )
    tpq = max(int(score.ticks_per_quarter), 1)
    cols: dict[str, list[np.ndarray]] = {c: [] for c in NOTE_COLUMNS if c != "file_id"}
    for i, (tt, ts) in enumerate(zip(score.tracks, seconds.tracks, strict=True)):
        if tt.note_num() == 0:
            continue
        nt, ns = tt.notes.numpy(), ts.notes.numpy()
        n = len(nt["time"])
        cols["track"].append(np.full(n, i, dtype=np.int16))
        cols["program"].append(np.full(n, tt.program, dtype=np.int16))
        cols["is_drum"].append(np.full(n, bool(tt.is_drum)))
        cols["pitch"].append(nt["pitch"].astype(np.int16))
        cols["velocity"].append(nt["velocity"].astype(np.int16))
        cols["onset_s"].append(ns["time"].astype(np.float64))
        cols["duration_s"].append(ns["duration"].astype(np.float64))
        cols["onset_beats"].append(nt["time"].astype(np.float64) / tpq)
        cols["duration_beats"].append(nt["duration"].astype(np.float64) / tpq)
    if cols["track"]:  # one frame for all tracks: thousands of tiny frames are slow to join
        notes = pd.DataFrame(
            {"file_id": file_id, **{c: np.concatenate(v) for c, v in cols.items()}}
        )
    else:
        notes = empty_notes()
    notes = notes.astype(NOTE_COLUMNS)
    if len(notes):
        notes = notes.sort_values(["onset_s", "pitch", "track"], kind="stable", ignore_index=True)

    ts_first = score.time_signatures[0] if len(score.time_signatures) else None
    info = {
        "length_s": float(seconds.end()) if len(notes) or score.end() else 0.0,
        "n_tracks": n_tracks,
        "n_messages": n_messages,
        "n_notes": len(notes),
        "ticks_per_quarter": tpq,
        "ts_numerator": int(ts_first.numerator) if ts_first else 4,
        "ts_denominator": int(ts_first.denominator) if ts_first else 4,
        "n_timesig_changes": max(len(score.time_signatures) - 1, 0),
        **_tempo_stats(score, int(score.end())),
        "hanging_notes": scan.hanging_notes,
    }
    if len(notes) and not np.isfinite(notes[["onset_s", "duration_s"]].to_numpy()).all():
        raise MidiParseError(path, "note times are not finite")
    return ParsedMidi(notes=notes, info=info)


def read_checked(
    path: str | Path, rules: Rules | None = None, file_id: str | None = None
) -> ParsedMidi:
    """The one way every file is read: parse, then apply ``rules``; MidiParseError if unusable."""
    parsed = parse_midi(path, file_id)
    reason = (rules or Rules()).reason(parsed.info)
    if reason:
        raise MidiParseError(path, reason, parsed.info)
    return parsed


def read_user_file(path: str | Path, rules: Rules | None = None) -> ParsedMidi:
    """A MIDI file handed to the CLI: checked with the ingest stage's rules, named by its path."""
    path = Path(path)
    if path.is_dir():
        raise MidiParseError(path, "is a folder, not a MIDI file")
    if not path.is_file():
        raise MidiParseError(path, "no such file")
    return read_checked(path, rules, str(path))
