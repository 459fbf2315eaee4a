"""Event streams and N_in -> N_out windows, the input of every next-note generator.

A song is one stream of its non-drum notes ordered by (onset, pitch); each event is
``[pitch, velocity, delta_onset, duration]`` (seconds; delta_onset of the first event is 0).
A song of N events gives N - N_in - N_out + 1 windows. The tone-deaf view keeps only
``[interval, duration]`` (interval = pitch - previous pitch, 0 for the first event),
so a melody and its transposition look the same.

Windows are stored as start indices into one concatenated event array, which keeps the
660-song corpus at a few MB instead of N_in copies of every note. ``save_event_data_streamed``
writes that file from the notes parquet a song at a time, so the `windows` stage's memory
does not grow with the collection.
"""

from __future__ import annotations

import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pandas only in annotations: `midiml continue` starts faster without it
    import pandas as pd

from midiml.io import iter_row_groups

FEATURES = ("pitch", "velocity", "delta_onset", "duration")
PITCH, VELOCITY, DELTA, DURATION = range(4)
SPLITS = ("train", "val", "test")


def event_stream(notes: pd.DataFrame) -> np.ndarray:
    """One file's notes -> (N, 4) float32 ``[pitch, velocity, delta_onset, duration]``."""
    nd = notes.loc[~notes["is_drum"].astype(bool)] if "is_drum" in notes else notes
    nd = nd.sort_values(["onset_s", "pitch"], kind="stable")
    onset = nd["onset_s"].to_numpy(dtype=np.float64)
    delta = np.diff(onset, prepend=onset[:1]) if len(onset) else onset
    out = np.stack(
        [
            nd["pitch"].to_numpy(np.float64),
            nd["velocity"].to_numpy(np.float64),
            np.maximum(delta, 0.0),
            nd["duration_s"].to_numpy(np.float64),
        ],
        axis=1,
    )
    return out.astype(np.float32).reshape(-1, 4)


def n_windows(n_events: int, n_in: int, n_out: int) -> int:
    return max(0, n_events - n_in - n_out + 1)


def make_windows(stream: np.ndarray, n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    """All windows of one stream: X (W, n_in, F) and Y (W, n_out, F), W = N - n_in - n_out + 1."""
    w = n_windows(len(stream), n_in, n_out)
    f = stream.shape[1]
    if w == 0:
        return np.zeros((0, n_in, f), stream.dtype), np.zeros((0, n_out, f), stream.dtype)
    view = np.lib.stride_tricks.sliding_window_view(stream, (n_in + n_out, f))[:w, 0]
    return view[:, :n_in].copy(), view[:, n_in:].copy()


def tonedeaf(stream: np.ndarray) -> np.ndarray:
    """``[interval, duration]`` per event; the first interval is 0."""
    pitch = stream[:, PITCH]
    interval = np.diff(pitch, prepend=pitch[:1]) if len(pitch) else pitch
    return np.stack([interval, stream[:, DURATION]], axis=1).astype(np.float32).reshape(-1, 2)


@dataclass
class EventData:
    """All songs' event streams, concatenated, with their split and the window starts."""

    events: np.ndarray  # (M, 4) float32
    offsets: np.ndarray  # (S + 1,) int64; song s is events[offsets[s]:offsets[s+1]]
    file_ids: np.ndarray  # (S,) str
    genres: np.ndarray  # (S,) str
    splits: np.ndarray  # (S,) str in train/val/test
    starts: dict[str, np.ndarray]  # split -> global start index of each window
    n_in: int
    n_out: int

    def song(self, s: int) -> np.ndarray:
        return self.events[self.offsets[s] : self.offsets[s + 1]]

    def songs(self, split: str) -> list[int]:
        return [int(i) for i in np.flatnonzero(self.splits == split)]

    def windows(
        self, split: str, starts: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Materialise X (W, n_in, 4), Y (W, n_out, 4) for a split (or given starts)."""
        st = self.starts[split] if starts is None else starts
        idx = st[:, None] + np.arange(self.n_in + self.n_out)[None, :]
        block = self.events[idx]
        return block[:, : self.n_in], block[:, self.n_in :]

    def save(self, path: str | Path) -> None:
        np.savez_compressed(
            path,
            events=self.events,
            offsets=self.offsets,
            file_ids=self.file_ids.astype(str),
            genres=self.genres.astype(str),
            splits=self.splits.astype(str),
            n_in=self.n_in,
            n_out=self.n_out,
            **{f"starts_{k}": v for k, v in self.starts.items()},
        )

    @classmethod
    def load(cls, path: str | Path) -> EventData:
        z = np.load(path, allow_pickle=False)
        return cls(
            events=z["events"],
            offsets=z["offsets"],
            file_ids=z["file_ids"],
            genres=z["genres"],
            splits=z["splits"],
            starts={k: z[f"starts_{k}"] for k in SPLITS},
            n_in=int(z["n_in"]),
            n_out=int(z["n_out"]),
        )


def spaced(n: int, k: int | None) -> np.ndarray:
    """At most ``k`` evenly spaced indices of range(n): caps long pieces without randomness."""
    if k is None or n <= k:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, int(k)).round().astype(np.int64))


def build_event_data(
    notes: pd.DataFrame,
    splits: pd.DataFrame,
    n_in: int,
    n_out: int,
    max_per_song: dict[str, int | None] | None = None,
) -> EventData:
    """Event streams of every split song plus its window starts (capped per song and split).

    ``splits`` is the song-level split (file_id, genre, split): a test song's windows are only
    ever in ``starts['test']``. ``max_per_song[split]`` keeps that many evenly spaced windows of
    a long song (None = all) so a 17,000-note piece does not drown the lo-fi loops.
    """
    by_file = {fid: event_stream(g) for fid, g in notes.groupby("file_id", sort=False)}
    return assemble_event_data(by_file, splits, n_in, n_out, max_per_song)


def assemble_event_data(
    by_file: dict[str, np.ndarray],
    splits: pd.DataFrame,
    n_in: int,
    n_out: int,
    max_per_song: dict[str, int | None] | None = None,
) -> EventData:
    """Event streams per file (``event_stream``) -> EventData in file_id order with windows."""
    max_per_song = max_per_song or {}
    sp = splits.sort_values("file_id").reset_index(drop=True)
    streams, fids, genres, splits_out = [], [], [], []
    for row in sp.itertuples(index=False):
        stream = by_file.get(row.file_id)
        streams.append(stream if stream is not None else np.zeros((0, 4), np.float32))
        fids.append(row.file_id)
        genres.append(row.genre)
        splits_out.append(row.split)
    lengths = np.array([len(s) for s in streams], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    events = np.concatenate(streams) if streams else np.zeros((0, 4), np.float32)
    starts: dict[str, list[np.ndarray]] = {k: [] for k in SPLITS}
    for s, split in enumerate(splits_out):
        w = n_windows(int(lengths[s]), n_in, n_out)
        starts[split].append(offsets[s] + spaced(w, max_per_song.get(split)))
    return EventData(
        events=events.astype(np.float32),
        offsets=offsets,
        file_ids=np.array(fids, dtype=str),
        genres=np.array(genres, dtype=str),
        splits=np.array(splits_out, dtype=str),
        starts={
            k: (np.concatenate(v) if v else np.zeros(0, np.int64)).astype(np.int64)
            for k, v in starts.items()
        },
        n_in=int(n_in),
        n_out=int(n_out),
    )


# np.savez_compressed stamps each member with the current time; a fixed stamp makes the file
# depend on its contents only (the same notes give the same bytes, so DVC sees no change)
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
_CHUNK_BYTES = 16 << 20  # what one write to the compressor holds (events or starts)


def _member(zf: zipfile.ZipFile, name: str) -> IO[bytes]:
    info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_TIME)
    info.compress_type = zipfile.ZIP_DEFLATED
    return zf.open(info, "w", force_zip64=True)


def _write_array(zf: zipfile.ZipFile, name: str, array: np.ndarray) -> None:
    """One whole (small) array as an .npy member, exactly as ``np.savez_compressed`` does."""
    with _member(zf, name) as fh:
        np.lib.format.write_array(fh, np.asanyarray(array), allow_pickle=False)


def _write_chunks(
    zf: zipfile.ZipFile, name: str, dtype: np.dtype, shape: tuple[int, ...], chunks: Iterator
) -> None:
    """An .npy member whose rows arrive in chunks: the header (from the known shape), then
    the rows' bytes in order, which is what ``np.save`` writes for a C-ordered array."""
    header = {
        "descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
        "fortran_order": False,
        "shape": shape,
    }
    with _member(zf, name) as fh:
        np.lib.format.write_array_header_1_0(fh, header)
        buffered, size = [], 0
        for chunk in chunks:
            data = np.ascontiguousarray(chunk, dtype=dtype).tobytes()
            buffered.append(data)
            size += len(data)
            if size >= _CHUNK_BYTES:
                fh.write(b"".join(buffered))
                buffered, size = [], 0
        fh.write(b"".join(buffered))


def save_event_data_streamed(
    notes_path: str | Path,
    splits: pd.DataFrame,
    n_in: int,
    n_out: int,
    max_per_song: dict[str, int | None] | None,
    out: str | Path | IO[bytes],
) -> dict[str, dict[str, int]]:
    """Write what ``build_event_data(...).save(out)`` writes, holding one song at a time.

    The notes parquet is read one row group at a time and each song's event stream spilled
    to a scratch file next to nothing in memory but its (position, length); the output, in
    file_id order, is then written member by member from that file. Peak memory is one row
    group plus per-song bookkeeping, whatever the collection's size. Returns songs and
    windows per split.
    """
    max_per_song = max_per_song or {}
    sp = splits.sort_values("file_id").reset_index(drop=True)
    fids = sp["file_id"].astype(str).to_numpy()
    wanted = set(fids.tolist())
    where: dict[str, tuple[int, int]] = {}  # file_id -> (byte position, events)
    scratch_dir = Path(out).parent if isinstance(out, str | Path) else None
    with tempfile.TemporaryFile(dir=scratch_dir) as scratch:
        for group in iter_row_groups(notes_path):
            for fid, g in group.groupby("file_id", sort=False):
                if fid in wanted:
                    if fid in where:
                        raise ValueError(f"{notes_path}: {fid}'s notes span several row groups")
                    stream = event_stream(g)
                    where[fid] = (scratch.tell(), len(stream))
                    scratch.write(stream.tobytes())
        lengths = np.array([where.get(f, (0, 0))[1] for f in fids], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        song_split = sp["split"].astype(str).to_numpy()

        def events() -> Iterator[np.ndarray]:
            for fid in fids:
                pos, n = where.get(fid, (0, 0))
                scratch.seek(pos)
                yield np.frombuffer(scratch.read(n * 16), dtype=np.float32).reshape(n, 4)

        def starts(split: str) -> Iterator[np.ndarray]:
            for s in np.flatnonzero(song_split == split):
                w = n_windows(int(lengths[s]), n_in, n_out)
                yield offsets[s] + spaced(w, max_per_song.get(split))

        counts = {k: sum(len(c) for c in starts(k)) for k in SPLITS}
        with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as zf:
            _write_chunks(zf, "events", np.float32, (int(offsets[-1]), 4), events())
            _write_array(zf, "offsets", offsets)
            _write_array(zf, "file_ids", fids.astype(str))
            _write_array(zf, "genres", sp["genre"].astype(str).to_numpy().astype(str))
            _write_array(zf, "splits", song_split.astype(str))
            _write_array(zf, "n_in", np.asarray(int(n_in)))
            _write_array(zf, "n_out", np.asarray(int(n_out)))
            for k in SPLITS:
                _write_chunks(zf, f"starts_{k}", np.int64, (counts[k],), starts(k))
    return {
        "songs": {k: int((song_split == k).sum()) for k in SPLITS},
        "windows": counts,
    }
