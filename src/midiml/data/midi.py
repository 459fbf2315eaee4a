"""Parse one MIDI file into note events (one row per note) and a one-row file summary.

Every file, whether the ingest stage or a ``midiml`` command reads it, goes through one path:
:func:`check_columns` (:func:`read_checked` as a table). A scan of the raw bytes
(:func:`scan_smf`) checks the structure, counts tracks and messages, and closes notes that are
switched on and never off at the end of their track (symusic would drop them); it hands
symusic a canonical file, which reads the notes, tempo map and time signatures fast (seconds
come from the tempo map in float64, vectorised). :class:`Rules` then says whether a readable
file is usable. Bad files raise :class:`MidiParseError` with one short reason, the same string
in the file table and on the command line. A damaged file keeps what it still holds
(:mod:`midiml.data.salvage`), its summary's ``salvaged`` saying what was lost, unless
``Rules.strict``.
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

from midiml.data import salvage, smf_scan

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
# A file refused as absurdly long is read again taking one delta longer than this many beats
# for damage (each track keeps what came before it); real files rest that long only rarely
# (orchestral parts do), so only a file that would be refused anyway is read this way.
MAX_DELTA_BEATS = 1024
# Meta events symusic decodes by fixed offsets (smf_scan refuses shorter ones: see its loop).
_META_NAMES = {0x51: "tempo", 0x58: "time signature", 0x59: "key signature"}


class MidiParseError(ValueError):
    """The file cannot be used; ``reason`` is one short phrase, the message names the file."""

    def __init__(self, path: str | Path, reason: str, info: dict | None = None) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason
        self.info = info or {}  # the file summary when the file was readable but unusable


class _Bad(Exception):
    """A structural problem found by the scan; its message is the reason.

    ``at``: where in the file the bad event starts (track problems), ``code`` the scan's code.
    """

    def __init__(self, reason: str, at: int | None = None, code: int = 0) -> None:
        super().__init__(reason)
        self.at = at
        self.code = code


@dataclass(frozen=True)
class Rules:
    """When a readable file is still unusable (``data.max_length_s``, ``data.min_notes``).

    The defaults are conf/data's; the CLI uses them, the ingest stage passes the params.
    """

    max_length_s: float = 3600.0
    min_notes: int = 1
    strict: bool = False  # refuse a damaged file instead of keeping what it still holds

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
    channels: int = 0  # bit c set: channel c plays notes (what a new track must avoid)
    salvaged: str = ""  # what a damaged file lost, one line ("" for a sound file)
    damage: str = ""  # the first damage's reason (the refusal when nothing is left)


def _track_reason(code: int, arg1: int, arg2: int, number: int) -> str:
    """The reason for a problem :func:`smf_scan.scan_track_events` reported in track ``number``."""
    return {
        smf_scan.VLQ_PAST_END: "event runs past the end of its track",
        smf_scan.VLQ_TOO_LONG: "variable-length number longer than 4 bytes",
        smf_scan.TICK_OVERFLOW: f"absurd length: track {number} runs past 2^31 ticks",
        smf_scan.PAST_END: f"event runs past the end of track {number}",
        smf_scan.NO_RUNNING_STATUS: f"running status without a status byte in track {number}",
        smf_scan.BAD_META: f"bad {_META_NAMES.get(arg1)} event (length {arg2}) in track {number}",
        smf_scan.ZERO_TEMPO: "tempo of 0 microseconds per beat",
        smf_scan.BAD_STATUS: f"unexpected status byte 0x{arg1:02X} in track {number}",
        smf_scan.DATA_OVER_127: f"data byte > 127 in track {number}",
        smf_scan.IMPOSSIBLE_DELTA: f"impossible delta of {arg1} ticks in track {number}",
    }[code]


def _scan_track(
    buf: bytes,
    loop: Callable,
    data: Any,
    counts: Any,
    order: Any,
    start: int,
    end: int,
    number: int,
    max_delta: int = MAX_TICK,
) -> tuple[bytes, int, int, int, int]:
    """Check one MTrk body; return (body with hanging notes closed, messages, hanging notes,
    channels with notes as a bit mask, where the end-of-track event starts or ``end``).

    ``loop`` walks the events of ``data`` (``buf`` itself, or as uint8 for the compiled loop);
    ``counts`` and ``order`` are its work arrays (``counts`` all -1, and left so).
    The rare rewrite of hanging notes stays in Python.
    """
    code, arg1, arg2, n_messages, eot_at, n_order = loop(
        data, start, end, MAX_TICK, max_delta, counts, order
    )
    if code:
        for k in order[:n_order]:
            counts[int(k)] = -1  # ready for the next track
        raise _Bad(_track_reason(code, arg1, arg2, number), int(eot_at), int(code))
    keys = [int(k) for k in order[:n_order]]
    open_counts = [int(counts[k]) for k in keys]
    for k in keys:
        counts[k] = -1  # ready for the next track
    hanging = sum(open_counts)
    channels = 0
    for k in keys:
        channels |= 1 << (k // 128)
    if not hanging:
        return buf[start:end], n_messages, 0, channels, eot_at
    # Close each hanging note at the track's last tick: the end-of-track delta, then note-offs.
    closing = bytearray()
    if eot_at < end:
        after = eot_at
        while buf[after] & 0x80:  # the end-of-track event's delta (checked by the scan)
            after += 1
        closing += buf[eot_at : after + 1]
    else:
        closing += b"\x00"
    first = True
    for key, count in zip(keys, open_counts, strict=True):
        channel, pitch = divmod(key, 128)
        for _ in range(count):
            if not first:
                closing += b"\x00"
            closing += bytes([0x80 | channel, pitch, 0])
            first = False
    closing += b"\x00\xff\x2f\x00"
    return buf[start:eot_at] + bytes(closing), n_messages, hanging, channels, eot_at


def scan_smf(buf: bytes, strict: bool = False, max_delta_beats: int | None = None) -> Scan:
    """Check a Standard MIDI File's structure; raise _Bad with the reason when it is broken.

    A damaged track keeps its events before the damage (:mod:`midiml.data.salvage`), a
    chunk header that is not one is skipped to the next track, and ``Scan.salvaged`` says
    what was lost; ``strict`` refuses such a file instead. A broken header is always refused.
    ``max_delta_beats``: a longer delta is damage too (see :data:`MAX_DELTA_BEATS`).
    """
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
    i, tracks, n_messages, hanging, channels = 8 + hlen, [], 0, 0, 0
    if smf_scan.compiled_loaded():  # the ingest loads it; one small file is faster without
        loop, data = smf_scan.load_compiled(), np.frombuffer(buf, dtype=np.uint8)
        counts: Any = np.full(smf_scan.N_KEYS, -1, dtype=np.int64)
        order: Any = np.zeros(smf_scan.N_KEYS, dtype=np.int64)
    else:
        loop, data = smf_scan.scan_track_events, buf
        counts, order = [-1] * smf_scan.N_KEYS, [0] * smf_scan.N_KEYS
    max_delta = MAX_TICK if strict or max_delta_beats is None else division * max_delta_beats
    skipped = False  # an unknown chunk was left out (or a damaged chunk header)
    lost: list[str] = []  # what damage cost, one phrase per place
    damage = ""
    while len(tracks) < ntracks and i + 8 <= len(buf):
        kind, length = buf[i : i + 4], int.from_bytes(buf[i + 4 : i + 8], "big")
        body = i + 8
        number = len(tracks)
        if kind == b"MTrk":
            end = body + length
            short = end > len(buf)
            if short and strict:
                raise _Bad(
                    f"truncated track {number}: chunk says {length} bytes, {len(buf) - body} left"
                )
            stop = min(end, len(buf))
            try:
                out, n, h, ch, eot_at = _scan_track(
                    buf, loop, data, counts, order, body, stop, number, max_delta
                )
            except _Bad as exc:
                if strict or exc.at is None:
                    raise
                # the file ended inside an event: every event before it is sound; the chunk
                # ended inside one while the file goes on: bytes were inserted somewhere in
                # the track (or its length rewritten), and everything after them is misplaced
                past_end = exc.code in (smf_scan.PAST_END, smf_scan.VLQ_PAST_END)
                inserted = past_end and not short and exc.at >= stop - 8
                kept = salvage.keep_before(
                    buf, body, exc.at, division, not (past_end and short), inserted
                )
                out, n, h, ch = kept.body, kept.n_messages, kept.hanging, kept.channels
                if short:
                    lost.append(
                        f"track {number} cut short ({len(buf) - body} of {length} bytes): kept "
                        f"its {kept.n_events} complete events, {end - kept.cut_at} bytes lost"
                    )
                else:
                    suspect = (
                        f" from byte {kept.cut_at} ({kept.n_suspect} event(s) before the damage "
                        "looked misread)"
                        if kept.n_suspect
                        else ""
                    )
                    lost.append(
                        f"track {number} damaged at byte {exc.at} ({exc}): kept {kept.n_events} "
                        f"events, dropped {stop - kept.cut_at} bytes{suspect}"
                    )
                damage = damage or (f"truncated track {number}" if short else str(exc))
                eot_at = stop
            else:
                if short and eot_at >= stop:
                    lost.append(
                        f"track {number} cut short ({len(buf) - body} of {length} bytes): kept "
                        f"its {n} complete events, {end - stop} bytes lost"
                    )
                    damage = damage or f"truncated track {number}"
                skipped |= short
            tracks.append(out)
            n_messages += n
            hanging += h
            channels |= ch
            i = end
            if not strict and eot_at < stop:  # a chunk length too long: trust end-of-track
                nxt = buf.find(b"MTrk", eot_at, eot_at + 12)
                if 0 <= nxt < end:
                    i, skipped = nxt, True
        elif kind.isalnum() and (strict or body + length <= len(buf)):
            skipped = True  # unknown chunks are skipped
            i = body + length
        elif strict:  # garbage is not a chunk
            raise _Bad(f"bad chunk after track {number}")
        else:  # damage between tracks: go on at the next track header
            nxt = buf.find(b"MTrk", i + 1)
            stop = nxt if nxt >= 0 else len(buf)
            lost.append(f"{stop - i} bytes of damage before track {number} skipped (byte {i})")
            damage = damage or f"bad chunk after track {number}"
            skipped = True
            i = stop
    if len(tracks) < ntracks:
        reason = f"truncated file: header says {ntracks} tracks, found {len(tracks)}"
        if strict or not tracks:
            raise _Bad(reason if strict else damage or reason)
        lost.append(f"header says {ntracks} tracks, found {len(tracks)}")
        damage = damage or reason
    salvaged = "; ".join(lost)
    if hlen == 6 and fmt <= 1 and not skipped and not hanging and not lost:
        # Already canonical (most files): the same bytes the rebuild below would give.
        return Scan(buf[:i], len(tracks), n_messages, hanging, channels)
    canonical = b"MThd" + struct.pack(">IHHH", 6, min(fmt, 1), len(tracks), division)
    canonical += b"".join(b"MTrk" + struct.pack(">I", len(t)) + t for t in tracks)
    return Scan(canonical, len(tracks), n_messages, hanging, channels, salvaged, damage)


def use_compiled_scan() -> None:
    """Scan with the compiled loop from now on, in this process and those it forks.

    For readers of many files (the ingest): loading it costs about a second, once.
    """
    smf_scan.load_compiled()


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
    path: str | Path,
    data: bytes | None = None,
    strict: bool = False,
    max_delta_beats: int | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read ``path`` (or its bytes ``data``) into note columns (numpy, no file_id) and a summary.

    Raises MidiParseError (naming the file, with one short reason) when it cannot be read:
    a damaged file keeps what it still holds (summary key ``salvaged`` says what it lost)
    unless ``strict``, and is refused with its damage when no note is left.
    No pandas here: ingest calls this once per file.
    """
    path = Path(path)
    try:
        if data is None:
            size = path.stat().st_size
            if size > MAX_FILE_BYTES:  # do not even read it
                raise _Bad(f"too large: {size / 2**20:.1f} MiB > {MAX_FILE_BYTES / 2**20:.0f} MiB")
            data = path.read_bytes()
        scan = scan_smf(data, strict, max_delta_beats)
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
        cols, info = _columns(score, scan, path)
    except MidiParseError:
        raise
    except Exception as exc:  # a safety net: an odd file must never crash a command
        raise MidiParseError(path, f"unreadable MIDI: {type(exc).__name__}: {exc}") from None
    if scan.salvaged and not info["n_notes"]:  # nothing left: refused for its damage
        raise MidiParseError(path, f"unreadable MIDI: {scan.damage}")
    info["salvaged"] = scan.salvaged
    return cols, info


def check_columns(
    path: str | Path, rules: Rules | None = None, data: bytes | None = None
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The one way every file is read and judged: parse, then apply ``rules``.

    Raises MidiParseError (with the file summary when the file was readable) if unusable.
    """
    rules = rules or Rules()
    cols, info = parse_columns(path, data, rules.strict)
    reason = rules.reason(info)
    if reason and reason.startswith("absurd length") and not rules.strict:
        try:  # an impossible delta: keep what came before it, if that is usable
            kept = parse_columns(path, data, False, MAX_DELTA_BEATS)
        except MidiParseError:
            kept = None
        if kept is not None and kept[1]["salvaged"] and not rules.reason(kept[1]):
            return kept
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
