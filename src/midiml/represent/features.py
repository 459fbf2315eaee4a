"""A music21-style feature dictionary per file, computed vectorised from the note events.

The seed study re-parsed every file with music21 to get ~50 values per file (key, metre,
tempo, pitch-class and chord histograms, durations, intervals) and found it slow. Here the
same kind of values come from ``notes.parquet`` with numpy/pandas group operations over all
files at once, so there is no per-note (or per-file) Python loop.

Conventions (why they match music21 where music21 has the feature):

- "pitched" notes are the non-drum notes; pitch, key, chord and interval features use them.
- key: Krumhansl–Schmuckler with music21's algorithm (``tonality.music21_keys``: tonic by
  the largest profile convolution, mode by the larger Pearson correlation), on the
  pitch-class histogram weighted by duration in quarter notes, as
  ``music21.analysis.discrete`` does.
- ``pc_*``: pitch-class histogram by note count, normalised to sum 1 (music21's
  ``pitches.pitchClassHistogram`` / jSymbolic P20 before rotation).
- melodic intervals: per track, consecutive single notes, chords skipped (music21's
  ``findConsecutiveNotes(skipChords=True)``), absolute semitones.
- onsets and the durations weighting the key are snapped, as music21 does on MIDI import
  (``quantizePost``), to the nearest 1/4 or 1/3 quarter note (``onset_divisors``).
- simultaneities: the pitched notes of a file that start on the same snapped onset;
  chord types come from their pitch-class set.

Undefined values (a share with nothing to count, a drums-only file's pitch) get fixed
neutral values (FILL: 0, pitch location 60 = middle C), never a statistic of the other files,
so a file's features do not depend on which files are extracted with it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from midiml.io import atomic_path
from midiml.represent.musical import MUSICAL_DOCS, MUSICAL_NAMES, musical_table
from midiml.represent.tonality import SCALE_MASKS, music21_keys
from midiml.represent.words import words_column

ONSET_RESOLUTION = 48  # ticks per quarter note used to decide "same onset" (no divisors)
ONSET_DIVISORS = (4, 3)  # music21's quantizePost default: snap to 1/4 or 1/3 quarter notes
GRID_TOLERANCE = 1 / 24  # quarter notes: an onset this close to a grid line lies on it
CHORD_TEMPLATES = {  # pitch classes above the root
    "maj": (0, 4, 7),
    "min": (0, 3, 7),
    "dim": (0, 3, 6),
    "aug": (0, 4, 8),
    "dom7": (0, 4, 7, 10),
    "maj7": (0, 4, 7, 11),
    "min7": (0, 3, 7, 10),
}
INTERVAL_BINS = {  # name -> (low, high) absolute semitones, inclusive
    "unison": (0, 0),
    "step": (1, 2),
    "third": (3, 4),
    "fourth_fifth": (5, 7),
    "sixth_octave": (8, 12),
    "leap": (13, 127),
}

FEATURE_DOCS: dict[str, str] = {
    "key_tonic": "Krumhansl–Schmuckler key tonic as pitch class 0–11 (C=0), as music21 finds it",
    "key_mode": "1 if the Krumhansl–Schmuckler key is major, 0 if minor",
    "key_corr": "Pearson correlation of the duration-weighted pitch-class histogram with the "
    "key's profile (music21 correlationCoefficient)",
    "key_clarity": "best minus second-best correlation over the 24 keys (tonal clarity)",
    "ts_numerator": "numerator of the first time signature",
    "ts_denominator": "denominator of the first time signature",
    "ts_changes": "number of time-signature changes",
    "tempo_mean": "time-weighted mean tempo (quarter notes per minute)",
    "tempo_std": "time-weighted standard deviation of the tempo",
    "log_tempo_changes": "log(1 + number of tempo changes)",
    **{f"pc_{i}": f"share of pitched notes with pitch class {i} (C=0)" for i in range(12)},
    "pc_entropy": "entropy (bits) of the pitch-class histogram",
    "scale_fit": "share of pitched notes (by duration) in the diatonic scale of the found key",
    "pitch_mean": "mean MIDI pitch",
    "pitch_std": "standard deviation of MIDI pitch",
    "pitch_min": "lowest MIDI pitch",
    "pitch_max": "highest MIDI pitch",
    "pitch_range": "highest minus lowest MIDI pitch (music21/jSymbolic P10 Range)",
    "pitch_variety": "number of distinct MIDI pitches used",
    "polyphony_mean": "mean number of distinct pitches starting together (per onset)",
    "polyphony_max": "largest number of distinct pitches starting together",
    "chord_onset_frac": "share of onsets whose simultaneity has 3 or more pitch classes",
    **{
        f"chord_{n}": f"share of 3+-pitch-class simultaneities that are {n} chords"
        for n in CHORD_TEMPLATES
    },
    "chord_other": "share of 3+-pitch-class simultaneities matching no listed chord type",
    "dur_mean_beats": "mean note duration in quarter notes",
    "dur_std_beats": "standard deviation of note duration in quarter notes",
    "dur_mean_s": "mean note duration in seconds (jSymbolic R17 Average Note Duration)",
    "dur_log_std": "standard deviation of log2 note duration in quarter notes",
    "interval_mean": "mean absolute melodic interval in semitones (jSymbolic M2)",
    "interval_std": "standard deviation of the absolute melodic interval",
    "interval_up_frac": "share of non-unison melodic intervals that go up",
    **{
        f"interval_{n}": f"share of melodic intervals of {lo}–{hi} semitones"
        for n, (lo, hi) in INTERVAL_BINS.items()
    },
    "ioi_mean_beats": "mean inter-onset interval between successive onsets, quarter notes",
    "ioi_std_beats": "standard deviation of the inter-onset interval, quarter notes",
    "ioi_cv": "coefficient of variation of the inter-onset interval in seconds",
    "notes_per_s": "notes per second over the file's length",
    "onsets_per_beat": "distinct onsets per quarter note between the first and last onset",
    "velocity_mean": "mean note velocity",
    "velocity_std": "standard deviation of note velocity",
    "velocity_variety": "number of distinct velocities used",
    "on_beat_frac": "share of onsets on a quarter-note beat",
    "grid16_frac": "share of onsets on the sixteenth-note grid (quantised vs. performed)",
    "log_length_s": "log(1 + length in seconds)",
    "log_n_notes": "log(1 + number of notes)",
    "n_tracks": "number of MIDI tracks",
    "n_programs": "number of distinct General MIDI programs among pitched notes",
    "drum_frac": "share of notes on drum channels",
}
FEATURE_DOCS.update(MUSICAL_DOCS)
FEATURE_NAMES = list(FEATURE_DOCS)
# the song as musical words (represent/words.py): text for the words model, not a number
WORDS_COLUMN = "words"
# Features that describe the file rather than the music: track layout, tempo map, metre
# meta-data, length, velocities, the beat grid (meaningless for performed MIDI), the key the
# song happens to be in, and instrumentation habits of a sequencer. Genre models must not use
# them: they tell sources apart, not genres.
ARTIFACT_FEATURES = (
    "key_tonic",
    "ts_numerator",
    "ts_denominator",
    "ts_changes",
    "tempo_mean",
    "tempo_std",
    "log_tempo_changes",
    *(f"pc_{i}" for i in range(12)),
    "dur_mean_beats",
    "dur_std_beats",
    "dur_log_std",
    "ioi_mean_beats",
    "ioi_std_beats",
    "onsets_per_beat",
    "velocity_mean",
    "velocity_std",
    "velocity_variety",
    "on_beat_frac",
    "grid16_frac",
    "log_length_s",
    "log_n_notes",
    "n_tracks",
    "n_programs",
    "drum_frac",
    "polyphony_max",
    "pitch_variety",
    "notes_per_s",
    # melodic interval sizes are taken per track, so they follow the track layout (a piano
    # transcription on one track leaps between the hands); notes sounding at once follow
    # the sustain habit (pedalled performances vs scores). Both differ more between sources
    # of one genre than between genres, and held-out sources score higher without them.
    "interval_mean",
    "interval_std",
    "interval_leap",
    "m_sounding_mean",
)
ROBUST_FEATURES = [f for f in FEATURE_NAMES if f not in ARTIFACT_FEATURES]
FILL = {name: 0.0 for name in FEATURE_NAMES} | {
    "pitch_mean": 60.0,
    "pitch_min": 60.0,
    "pitch_max": 60.0,
}


def _chord_lookup() -> np.ndarray:
    """Chord-type index for every 12-bit pitch-class set (len(CHORD_TEMPLATES) = other)."""
    table = np.full(4096, len(CHORD_TEMPLATES), dtype=np.int64)
    for t, pcs in enumerate(CHORD_TEMPLATES.values()):
        for root in range(12):
            table[sum(1 << ((root + p) % 12) for p in pcs)] = t
    return table


def _group_stat(codes: np.ndarray, values: np.ndarray, n: int) -> tuple[np.ndarray, ...]:
    """Count, mean and (population) std of ``values`` per code in 0..n-1 (NaN where empty)."""
    cnt = np.bincount(codes, minlength=n).astype(float)
    s = np.bincount(codes, weights=values, minlength=n)
    s2 = np.bincount(codes, weights=values * values, minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = s / cnt
        var = np.maximum(s2 / cnt - mean**2, 0.0)
    return cnt, mean, np.sqrt(var)


def _share(
    mask: np.ndarray, codes: np.ndarray, n: int, weights: np.ndarray | None = None
) -> np.ndarray:
    """Per code, the (weighted) share of rows where ``mask`` holds (NaN where no rows)."""
    w = np.ones(len(codes)) if weights is None else weights
    tot = np.bincount(codes, weights=w, minlength=n)
    hit = np.bincount(codes, weights=w * mask, minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        return hit / tot


def snap(beats: np.ndarray, divisors: tuple[int, ...] | list[int]) -> np.ndarray:
    """Each value moved to the nearest multiple of 1/d over d in ``divisors``, in units of
    1/lcm(divisors) quarter notes (integers), like music21's ``quantizePost``."""
    unit = int(np.lcm.reduce(np.asarray(divisors, dtype=np.int64)))
    best = np.rint(beats * divisors[0]) * (unit // divisors[0])
    for d in divisors[1:]:
        cand = np.rint(beats * d) * (unit // d)
        best = np.where(np.abs(beats * unit - cand) < np.abs(beats * unit - best), cand, best)
    return best.astype(np.int64)


def extract_features(
    notes: pd.DataFrame,
    files: pd.DataFrame,
    onset_resolution: int = ONSET_RESOLUTION,
    grid_tolerance: float = GRID_TOLERANCE,
    onset_divisors: tuple[int, ...] | list[int] | None = ONSET_DIVISORS,
) -> pd.DataFrame:
    """One row per usable file: ``file_id``, ``genre``, the FEATURE_NAMES columns, then
    ``WORDS_COLUMN`` (the song as a sentence of musical words, a string).

    ``notes`` has the columns of ``notes.parquet``; ``files`` those of ``files.parquet``
    (only rows with status 'ok' are used when a status column is present).
    ``onset_divisors`` (music21-style snapping) or, when empty, ``onset_resolution``
    (ticks per quarter) decides which notes start together;
    ``grid_tolerance`` (quarter notes) how close an onset must be to a beat/grid line.
    """
    if "status" in files.columns:
        files = files[files["status"] == "ok"]
    files = files.reset_index(drop=True)
    ids = files["file_id"].astype(str)
    n = len(files)
    fid_all = pd.Categorical(notes["file_id"].astype(str), categories=ids).codes
    keep = fid_all >= 0
    fid_all = fid_all[keep].astype(np.int64)
    drum_all = notes["is_drum"].to_numpy(bool)[keep]
    vel_all = notes["velocity"].to_numpy(np.float64)[keep]
    feats: dict[str, np.ndarray] = {}

    # --- file-level meta from the ingest (tempo map, metre, size)
    feats["ts_numerator"] = files["ts_numerator"].to_numpy(float)
    feats["ts_denominator"] = files["ts_denominator"].to_numpy(float)
    feats["ts_changes"] = files["n_timesig_changes"].to_numpy(float)
    feats["tempo_mean"] = files["qpm_mean"].to_numpy(float)
    feats["tempo_std"] = files["qpm_std"].to_numpy(float)
    feats["log_tempo_changes"] = np.log1p(files["n_tempo_changes"].to_numpy(float))
    length = files["length_s"].to_numpy(float)
    feats["log_length_s"] = np.log1p(length)
    feats["n_tracks"] = files["n_tracks"].to_numpy(float)

    n_all = np.bincount(fid_all, minlength=n).astype(float)
    feats["log_n_notes"] = np.log1p(n_all)
    with np.errstate(invalid="ignore", divide="ignore"):
        feats["notes_per_s"] = np.where(length > 0, n_all / length, np.nan)
    feats["drum_frac"] = _share(drum_all, fid_all, n)
    _, feats["velocity_mean"], feats["velocity_std"] = _group_stat(fid_all, vel_all, n)
    vel_used = np.bincount(fid_all * 128 + vel_all.astype(np.int64), minlength=n * 128)
    feats["velocity_variety"] = (vel_used.reshape(n, 128) > 0).sum(axis=1).astype(float)

    # --- pitched notes, sorted by file, onset tick, pitch
    sub = notes.loc[keep].loc[~drum_all]
    fid = fid_all[~drum_all]
    pitch = sub["pitch"].to_numpy(np.int64)
    track = sub["track"].to_numpy(np.int64)
    on_raw = sub["onset_beats"].to_numpy(float)
    dur_raw = sub["duration_beats"].to_numpy(float)
    if onset_divisors:
        unit = int(np.lcm.reduce(np.asarray(onset_divisors, dtype=np.int64)))
        tick = snap(on_raw, onset_divisors)
        key_w = (snap(on_raw + dur_raw, onset_divisors) - tick) / unit
    else:
        tick = np.rint(on_raw * onset_resolution).astype(np.int64)
        key_w = dur_raw
    order = np.lexsort((pitch, tick, fid))
    fid, pitch, track, tick = fid[order], pitch[order], track[order], tick[order]
    onset_b = sub["onset_beats"].to_numpy(float)[order]
    onset_s = sub["onset_s"].to_numpy(float)[order]
    dur_b = dur_raw[order]
    key_w = np.maximum(key_w[order], 0.0)
    dur_s = sub["duration_s"].to_numpy(float)[order]
    program = sub["program"].to_numpy(np.int64)[order]
    pc = pitch % 12

    # pitch classes: count histogram (music21 pitchClassHistogram) and duration-weighted (key)
    pc_count = np.bincount(fid * 12 + pc, minlength=n * 12).reshape(n, 12).astype(float)
    pc_dur = np.bincount(fid * 12 + pc, weights=key_w, minlength=n * 12).reshape(n, 12)
    tot = pc_count.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        pc_share = pc_count / tot
    for i in range(12):
        feats[f"pc_{i}"] = pc_share[:, i]
    with np.errstate(invalid="ignore", divide="ignore"):
        logs = np.where(pc_share > 0, np.log2(np.where(pc_share > 0, pc_share, 1.0)), 0.0)
    feats["pc_entropy"] = np.where(tot[:, 0] > 0, -(pc_share * logs).sum(axis=1), np.nan)
    keyf = music21_keys(pc_dur)
    feats.update(keyf)
    scale_row = keyf["key_tonic"].astype(np.int64) + np.where(keyf["key_mode"] > 0, 0, 12)
    in_scale = SCALE_MASKS[scale_row]  # (n × 12)
    with np.errstate(invalid="ignore", divide="ignore"):
        feats["scale_fit"] = (pc_dur * in_scale).sum(axis=1) / pc_dur.sum(axis=1)

    cnt, feats["pitch_mean"], feats["pitch_std"] = _group_stat(fid, pitch.astype(float), n)
    has = cnt > 0
    pmin = np.full(n, np.nan)
    pmax = np.full(n, np.nan)
    pstats = pd.DataFrame({"f": fid, "p": pitch}).groupby("f")["p"].agg(["min", "max"])
    pmin[pstats.index.to_numpy()] = pstats["min"].to_numpy()
    pmax[pstats.index.to_numpy()] = pstats["max"].to_numpy()
    feats["pitch_min"], feats["pitch_max"] = pmin, pmax
    feats["pitch_range"] = pmax - pmin
    used = np.bincount(fid * 128 + pitch, minlength=n * 128).reshape(n, 128) > 0
    feats["pitch_variety"] = np.where(has, used.sum(axis=1), np.nan)
    prog_used = np.bincount(fid * 128 + program, minlength=n * 128).reshape(n, 128) > 0
    feats["n_programs"] = prog_used.sum(axis=1).astype(float)

    # durations
    _, feats["dur_mean_beats"], feats["dur_std_beats"] = _group_stat(fid, dur_b, n)
    _, feats["dur_mean_s"], _ = _group_stat(fid, dur_s, n)
    _, _, feats["dur_log_std"] = _group_stat(fid, np.log2(np.maximum(dur_b, 1 / 64)), n)

    # simultaneities: pitched notes that start on the same tick of a file
    new = np.ones(len(fid), bool)
    new[1:] = (fid[1:] != fid[:-1]) | (tick[1:] != tick[:-1])
    grp = np.cumsum(new) - 1
    g_first = np.flatnonzero(new)
    g_fid = fid[g_first]
    n_groups = len(g_first)
    uniq_pitch = np.ones(len(fid), bool)
    uniq_pitch[1:] = new[1:] | (pitch[1:] != pitch[:-1])
    g_poly = np.bincount(grp, weights=uniq_pitch, minlength=n_groups)
    _, feats["polyphony_mean"], _ = _group_stat(g_fid, g_poly, n)
    pmax_poly = np.zeros(n)
    np.maximum.at(pmax_poly, g_fid, g_poly)
    feats["polyphony_max"] = np.where(has, pmax_poly, np.nan)
    gp = pd.DataFrame({"g": grp, "pc": pc}).drop_duplicates()
    mask = np.bincount(
        gp["g"].to_numpy(), weights=np.left_shift(1, gp["pc"].to_numpy()), minlength=n_groups
    ).astype(np.int64)
    n_pcs = np.bincount(gp["g"].to_numpy(), minlength=n_groups)
    is_chord = n_pcs >= 3
    feats["chord_onset_frac"] = _share(is_chord, g_fid, n)
    ctype = _chord_lookup()[mask[is_chord]]
    c_fid = g_fid[is_chord]
    for t, name in enumerate([*CHORD_TEMPLATES, "other"]):
        feats[f"chord_{name}"] = _share(ctype == t, c_fid, n)

    # inter-onset intervals between successive onsets of a file
    g_on_b, g_on_s = onset_b[g_first], onset_s[g_first]
    same = g_fid[1:] == g_fid[:-1]
    ioi_b = np.diff(g_on_b)[same]
    ioi_s = np.diff(g_on_s)[same]
    i_fid = g_fid[1:][same]
    _, feats["ioi_mean_beats"], feats["ioi_std_beats"] = _group_stat(i_fid, ioi_b, n)
    _, m_s, sd_s = _group_stat(i_fid, ioi_s, n)
    with np.errstate(invalid="ignore", divide="ignore"):
        feats["ioi_cv"] = np.where(m_s > 0, sd_s / m_s, np.nan)
    span = np.zeros(n)
    np.maximum.at(span, g_fid, g_on_b)
    first = np.full(n, np.inf)
    np.minimum.at(first, g_fid, g_on_b)
    g_cnt = np.bincount(g_fid, minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        feats["onsets_per_beat"] = np.where(span - first > 0, g_cnt / (span - first), np.nan)
    frac_b = g_on_b - np.floor(g_on_b)
    feats["on_beat_frac"] = _share(np.minimum(frac_b, 1 - frac_b) < grid_tolerance, g_fid, n)
    q = g_on_b * 4
    feats["grid16_frac"] = _share(np.abs(q - np.rint(q)) < 4 * grid_tolerance, g_fid, n)

    # melodic intervals: per track, consecutive single notes (chords skipped, as music21)
    t_order = np.lexsort((pitch, tick, track, fid))
    tf, tt, tk, tp = fid[t_order], track[t_order], tick[t_order], pitch[t_order]
    start = np.ones(len(tf), bool)
    start[1:] = (tf[1:] != tf[:-1]) | (tt[1:] != tt[:-1]) | (tk[1:] != tk[:-1])
    tg = np.cumsum(start) - 1
    single = np.bincount(tg)[tg] == 1
    sf, st, sp = tf[single], tt[single], tp[single]
    cont = (sf[1:] == sf[:-1]) & (st[1:] == st[:-1])
    step = np.diff(sp)[cont]
    m_fid = sf[1:][cont]
    absint = np.abs(step).astype(float)
    _, feats["interval_mean"], feats["interval_std"] = _group_stat(m_fid, absint, n)
    feats["interval_up_frac"] = _share(step > 0, m_fid, n, weights=(step != 0).astype(float))
    for name, (lo, hi) in INTERVAL_BINS.items():
        feats[f"interval_{name}"] = _share((absint >= lo) & (absint <= hi), m_fid, n)

    mus = musical_table(notes.loc[keep], list(ids), np.asarray(feats["key_tonic"]))
    feats.update({name: mus[name].to_numpy() for name in MUSICAL_NAMES})
    out = pd.DataFrame({name: feats[name] for name in FEATURE_NAMES}, dtype=np.float64)
    out = out.fillna(FILL)
    head = pd.DataFrame({"file_id": ids.to_numpy(), "genre": files["genre"].astype(str).to_numpy()})
    words = pd.DataFrame(
        {WORDS_COLUMN: words_column(notes.loc[keep], list(ids), np.asarray(feats["key_tonic"]))}
    )
    out = pd.concat([head, out, words], axis=1)
    return out


def _row_groups_of(notes_path: str | Path) -> dict[str, int]:
    """Each file's row group in a notes parquet (read from the ``file_id`` column alone).

    The ingest writes each file's notes inside one row group; a file spanning two is refused.
    """
    pf = pq.ParquetFile(notes_path)
    group_of: dict[str, int] = {}
    for i in range(pf.num_row_groups):
        column = pf.read_row_group(i, columns=["file_id"]).column("file_id")
        for fid in pc.unique(column.combine_chunks()).to_pylist():
            if str(fid) in group_of:
                raise ValueError(f"{notes_path}: a file's notes span several row groups")
            group_of[str(fid)] = i
    return group_of


def _group_features(
    notes_path: str | Path,
    k: int,
    here: pd.DataFrame,
    onset_resolution: int,
    grid_tolerance: float,
    onset_divisors: tuple[int, ...] | list[int] | None,
    blas_threads: dict[str, int] | None = None,
) -> pd.DataFrame:
    """``extract_features`` of the files ``here`` on notes row group ``k`` (-1: no notes),
    indexed by file id; reads its own row group, so it can run in a worker process.

    ``blas_threads`` ({library prefix: threads}, the calling process's) is applied here: a
    chord feature of a file can turn on the last bit of a BLAS sum, and that depends on how
    many threads split it (a worker process starts with one)."""
    from threadpoolctl import threadpool_limits

    pf = pq.ParquetFile(notes_path)
    table = pf.read_row_group(k) if k >= 0 else pf.schema_arrow.empty_table()
    with threadpool_limits(limits=blas_threads):
        part = extract_features(
            table.to_pandas(), here, onset_resolution, grid_tolerance, onset_divisors
        )
    return part.set_index(part["file_id"].astype(str), drop=False)


def iter_features_streamed(
    notes_path: str | Path,
    files: pd.DataFrame,
    onset_resolution: int = ONSET_RESOLUTION,
    grid_tolerance: float = GRID_TOLERANCE,
    onset_divisors: tuple[int, ...] | list[int] | None = ONSET_DIVISORS,
    n_jobs: int = 1,
) -> Iterator[pd.DataFrame]:
    """``extract_features`` of the usable ``files`` in batches, in the order of ``files``:
    one notes row group read at a time (a file's features never depend on other files), so
    memory holds one batch of notes and of feature rows (the words column included), not all.
    Row groups in the order of ``files`` (as the ingest writes them) are each read once;
    ``n_jobs`` row groups are worked on at a time (processes, results taken in order: the
    same batches whatever ``n_jobs``; a few row groups in memory instead of one)."""
    from joblib import Parallel, delayed, parallel_config
    from threadpoolctl import threadpool_info

    if "status" in files.columns:
        files = files[files["status"] == "ok"]
    files = files.reset_index(drop=True)
    ids = files["file_id"].astype(str)
    group_of = _row_groups_of(notes_path)
    key = ids.map(group_of).fillna(-1).astype(int).to_numpy()  # -1: a file without notes
    left = pd.Series(key).value_counts().to_dict()  # files still to yield, per row group
    if not len(files):
        yield _group_features(
            notes_path, -1, files, onset_resolution, grid_tolerance, onset_divisors
        ).reset_index(drop=True)
        return
    runs = np.flatnonzero(np.diff(key, prepend=key[0] - 1, append=key[-1] - 1))
    order = list(dict.fromkeys(int(key[a]) for a in runs[:-1]))  # row groups by first use
    blas = {i["prefix"]: int(i["num_threads"]) for i in threadpool_info()}
    with parallel_config("loky", inner_max_num_threads=max(blas.values(), default=1)):
        parts = Parallel(n_jobs=max(1, min(n_jobs, len(order))), return_as="generator")(
            delayed(_group_features)(
                notes_path,
                k,
                files[key == k],
                onset_resolution,
                grid_tolerance,
                onset_divisors,
                blas,
            )
            for k in order
        )
    cached: dict[int, pd.DataFrame] = {}
    for a, b in zip(runs[:-1], runs[1:], strict=True):  # consecutive files of one row group
        k = int(key[a])
        if k not in cached:
            cached[k] = next(parts)  # the next row group by first use is this one
        yield cached[k].loc[ids.iloc[a:b].to_numpy()].reset_index(drop=True)
        left[k] -= b - a
        if not left[k]:
            del cached[k]


def extract_features_streamed(
    notes_path: str | Path,
    files: pd.DataFrame,
    onset_resolution: int = ONSET_RESOLUTION,
    grid_tolerance: float = GRID_TOLERANCE,
    onset_divisors: tuple[int, ...] | list[int] | None = ONSET_DIVISORS,
    n_jobs: int = 1,
) -> pd.DataFrame:
    """``extract_features`` on a notes parquet one row group at a time, as one frame (the
    same frame ``extract_features`` gives on all the notes at once)."""
    batches = iter_features_streamed(
        notes_path, files, onset_resolution, grid_tolerance, onset_divisors, n_jobs
    )
    return pd.concat(list(batches), ignore_index=True)


def write_features_streamed(
    notes_path: str | Path,
    files: pd.DataFrame,
    out_path: str | Path,
    onset_resolution: int = ONSET_RESOLUTION,
    grid_tolerance: float = GRID_TOLERANCE,
    onset_divisors: tuple[int, ...] | list[int] | None = ONSET_DIVISORS,
    n_jobs: int = 1,
) -> tuple[int, int]:
    """``extract_features_streamed`` written to ``out_path`` (atomically) a batch per parquet
    row group, so peak memory stays flat as the collection grows (the words text held for
    every file had doubled it at 50,000 files). Returns (rows, columns)."""
    rows, columns, writer = 0, 0, None
    with atomic_path(out_path) as tmp:
        try:
            for batch in iter_features_streamed(
                notes_path, files, onset_resolution, grid_tolerance, onset_divisors, n_jobs
            ):
                table = pa.Table.from_pandas(
                    batch, preserve_index=False, schema=writer.schema if writer else None
                )
                if writer is None:
                    writer = pq.ParquetWriter(tmp, table.schema)
                writer.write_table(table)
                rows, columns = rows + len(batch), batch.shape[1]
        finally:
            if writer is not None:
                writer.close()
    return rows, columns


class FeatureExtractor:
    """scikit-learn style wrapper: ``transform((notes, files))`` -> feature frame."""

    feature_names_out_ = FEATURE_NAMES

    def __init__(
        self,
        onset_resolution: int = ONSET_RESOLUTION,
        grid_tolerance: float = GRID_TOLERANCE,
        onset_divisors: tuple[int, ...] | None = ONSET_DIVISORS,
    ) -> None:
        self.onset_resolution = onset_resolution
        self.grid_tolerance = grid_tolerance
        self.onset_divisors = onset_divisors

    def fit(self, X=None, y=None) -> FeatureExtractor:  # noqa: N803 (sklearn naming)
        return self

    def transform(self, X: tuple[pd.DataFrame, pd.DataFrame]) -> pd.DataFrame:  # noqa: N803
        notes, files = X
        return extract_features(
            notes, files, self.onset_resolution, self.grid_tolerance, self.onset_divisors
        )

    def get_feature_names_out(self) -> list[str]:
        return list(FEATURE_NAMES)
