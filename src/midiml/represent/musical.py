"""Descriptors of the music itself, measured in seconds and relative to the key.

The file-level features (``features.py``) include the habits of whoever wrote the file:
track layout, tempo map, velocities, the beat grid, the key the song happens to be in.
These do not: they come from the sounding pitches and their times in seconds only, so a
performance, a score rendering and a producer's loop of the same music agree on them, and
re-encodings (``perturb.py``) leave them (nearly) unchanged. Chords are the pitch classes
sounding at each onset cluster (onsets within ``CLUSTER_S`` of each other).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from midiml.represent.progression import PROGRESSION_DOCS, progression_features
from midiml.represent.tonality import DIATONIC

CLUSTER_S = 0.06  # onsets closer than this start "together" (human chords are not exact)
FRAME_S = 0.25  # chroma frame for harmony over time and repetition
EXTENDED = {  # interval sets above a root -> chord family (pitch-class sets, any voicing)
    "triad": [(0, 4, 7), (0, 3, 7)],
    "seventh": [(0, 4, 7, 10), (0, 4, 7, 11), (0, 3, 7, 10), (0, 3, 6, 10), (0, 3, 6, 9)],
    "ninth": [
        (0, 2, 4, 7, 10),
        (0, 2, 4, 7, 11),
        (0, 2, 3, 7, 10),
        (0, 2, 4, 10),
        (0, 2, 4, 11),
        (0, 2, 3, 10),
        (0, 2, 4, 7),
        (0, 2, 3, 7),
    ],
}
MUSICAL_DOCS: dict[str, str] = {
    "m_chord_triad": "share of 3+-pitch-class onsets that are major/minor triads",
    "m_chord_seventh": "share of 3+-pitch-class onsets that are seventh chords (any quality)",
    "m_chord_ninth": "share of 3+-pitch-class onsets that are ninth/add9 chords",
    "m_chord_ext": "share of 3+-pitch-class onsets with 4 or more pitch classes",
    "m_chord_size": "mean number of pitch classes sounding per frame (harmonic thickness)",
    "m_chord_changes_per_s": "changes of the sounding pitch-class set per second (harmonic rhythm)",
    "m_chord_vocab": "distinct sounding pitch-class sets per 10 s of music (harmonic variety)",
    "m_repetition": "best mean chroma similarity of the music with itself 1–16 s later (loops)",
    "m_repetition_lag_s": "the lag (s) of that best self-similarity",
    **{f"m_pcrel_{i}": f"share of notes {i} semitones above the key's tonic" for i in range(12)},
    "m_pc_trans_entropy": "entropy (bits) of the key-free pitch-class step between successive "
    "top notes",
    "m_pc_trans_same": "share of successive top notes with the same pitch class",
    "m_bass_mean": "mean lowest pitch per onset cluster",
    "m_top_mean": "mean highest pitch per onset cluster",
    "m_spread": "mean top minus bottom pitch per onset cluster",
    "m_onsets_per_s": "onset clusters per second of music",
    "m_sounding_mean": "mean number of notes sounding at once (sustain x density)",
    "m_silence_frac": "share of frames with no note sounding",
    "m_ioi_median_s": "median inter-onset interval (s)",
    "m_ioi_log_std": "standard deviation of log2 inter-onset interval",
    "m_dur_median_s": "median note duration (s)",
    "m_legato": "median of note duration over the time to the next onset (sustain)",
    "m_single_frac": "share of onset clusters with a single pitch (melody vs block chords)",
    "m_melody_step_frac": "share of successive top notes moving by 1-2 semitones",
    "m_repetition_long": "best mean chroma similarity of the music with itself 16–64 s later "
    "(a whole section or the song looping)",
    "m_modulation": "share of 8 s windows whose best-fitting diatonic scale is not the "
    "song's (modulation, tonicisation)",
    "m_local_chromatic": "mean share of a window's sounding frames outside its best-fitting "
    "diatonic scale (chromatic passing notes)",
    "m_bass_alternate": "share of onset clusters whose lowest note returns to the one two "
    "clusters before after a change (oom-pah, Alberti and stride accompaniment)",
    "m_bass_repeat": "share of onset clusters whose lowest note repeats the previous one",
}
MUSICAL_DOCS.update(PROGRESSION_DOCS)  # chords per half second and their root motion
MUSICAL_NAMES = list(MUSICAL_DOCS)


def _families() -> dict[int, str]:
    out: dict[int, str] = {}
    for fam, shapes in EXTENDED.items():
        for shape in shapes:
            for root in range(12):
                mask = sum(1 << ((root + i) % 12) for i in shape)
                out.setdefault(mask, fam)
    return out


FAMILIES = _families()
WINDOW_S = 8.0  # window of local key


def _entropy(counts: np.ndarray) -> float:
    p = counts[counts > 0] / counts.sum() if counts.sum() else np.array([])
    return float(-(p * np.log2(p)).sum()) if len(p) else 0.0


def _sounding(
    start: np.ndarray, end: np.ndarray, pc: np.ndarray, n_frames: int
) -> tuple[np.ndarray, np.ndarray]:
    """(frames x 12 notes sounding per pitch class, notes sounding per frame) of notes
    sounding in frames ``start[i]`` to ``end[i] - 1`` (``start < end <= n_frames``), as
    floats: each note's +1 where it starts and -1 where it ends, summed over the frames in
    integers (exact: the counts a loop adding 1.0 per note and frame gives, without a
    Python step per note, which was most of the time of the copies' features)."""
    cells = (n_frames + 1) * 12
    edges = np.bincount(start * 12 + pc, minlength=cells) - np.bincount(
        end * 12 + pc, minlength=cells
    )
    chroma = np.cumsum(edges.reshape(n_frames + 1, 12), axis=0)[:n_frames]
    return chroma.astype(np.float64), chroma.sum(axis=1).astype(np.float64)


def musical_features(song: pd.DataFrame, key_tonic: int) -> dict[str, float]:
    """The MUSICAL_NAMES values of one file's notes (drums ignored)."""
    out = dict.fromkeys(MUSICAL_NAMES, 0.0)
    s = song[~song["is_drum"].to_numpy(bool)]
    if not len(s):
        return out
    out.update(progression_features(s))
    on = s["onset_s"].to_numpy(float)
    dur = np.maximum(s["duration_s"].to_numpy(float), 0.01)
    pitch = s["pitch"].to_numpy(int)
    order = np.argsort(on, kind="stable")
    on, dur, pitch = on[order], dur[order], pitch[order]
    pc = pitch % 12
    rel = np.bincount((pc - key_tonic) % 12, minlength=12) / len(pc)
    for i in range(12):
        out[f"m_pcrel_{i}"] = float(rel[i])

    # onset clusters: a new cluster when the gap to the previous onset exceeds CLUSTER_S
    new = np.ones(len(on), bool)
    new[1:] = np.diff(on) > CLUSTER_S
    cl = np.cumsum(new) - 1
    n_cl = int(cl[-1]) + 1
    c_on = on[new]
    low = np.full(n_cl, 127)
    high = np.zeros(n_cl, int)
    np.minimum.at(low, cl, pitch)
    np.maximum.at(high, cl, pitch)
    masks = np.zeros(n_cl, np.int64)
    np.bitwise_or.at(masks, cl, np.left_shift(1, pc).astype(np.int64))
    n_pcs = np.array([bin(int(m)).count("1") for m in masks])
    out["m_bass_mean"] = float(low.mean())
    out["m_top_mean"] = float(high.mean())
    out["m_spread"] = float((high - low).mean())
    out["m_single_frac"] = float((n_pcs == 1).mean())
    span = max(float((on + dur).max() - on.min()), 1e-3)
    out["m_onsets_per_s"] = n_cl / span
    if n_cl > 1:
        ioi = np.diff(c_on)
        out["m_ioi_median_s"] = float(np.median(ioi))
        out["m_ioi_log_std"] = float(np.std(np.log2(np.maximum(ioi, 0.01))))
        nxt = np.append(c_on[1:], c_on[-1] + np.median(ioi))[cl]
        out["m_legato"] = float(np.median(dur / np.maximum(nxt - on, 0.01)))
        top_pc = high % 12
        step = (np.diff(top_pc)) % 12
        out["m_pc_trans_entropy"] = _entropy(np.bincount(step, minlength=12).astype(float))
        out["m_pc_trans_same"] = float((step == 0).mean())
        out["m_melody_step_frac"] = float(np.isin(np.abs(np.diff(high)), (1, 2)).mean())
        out["m_bass_repeat"] = float((low[1:] == low[:-1]).mean())
        if n_cl > 2:
            alt = (low[2:] == low[:-2]) & (low[2:] != low[1:-1])
            out["m_bass_alternate"] = float(alt.mean())
    out["m_dur_median_s"] = float(np.median(dur))

    # frames: which pitch classes sound, for harmony over time and repetition
    n_fr = int(np.ceil(span / FRAME_S)) + 1
    t0 = on.min()
    f_start = np.floor((on - t0) / FRAME_S).astype(int)
    f_end = np.maximum(np.ceil((on + dur - t0) / FRAME_S).astype(int), f_start + 1)
    f_end = np.minimum(f_end, n_fr)
    chroma, count = _sounding(f_start, f_end, pc, n_fr)
    sounding = chroma > 0
    size = sounding.sum(axis=1)
    active = size > 0
    out["m_silence_frac"] = float(1 - active.mean())
    out["m_sounding_mean"] = float(count[active].mean()) if active.any() else 0.0
    out["m_chord_size"] = float(size[active].mean()) if active.any() else 0.0
    fmask = (sounding * (1 << np.arange(12))).sum(axis=1).astype(np.int64)
    fm = fmask[active]
    changes = int((fm[1:] != fm[:-1]).sum()) if len(fm) > 1 else 0
    out["m_chord_changes_per_s"] = changes / span
    chordish = fm[size[active] >= 3]
    out["m_chord_vocab"] = len(set(chordish.tolist())) / max(span / 10.0, 1.0)
    if len(chordish):
        fams = np.array([FAMILIES.get(int(m), "other") for m in chordish])
        for fam in EXTENDED:
            out[f"m_chord_{fam}"] = float((fams == fam).mean())
        out["m_chord_ext"] = float((size[active][size[active] >= 3] >= 4).mean())

    # local key: best diatonic set per window vs the song's
    fit_all = DIATONIC @ chroma.sum(axis=0)
    home = int(np.argmax(fit_all))
    per = int(WINDOW_S / FRAME_S)
    moved, chromatic = [], []
    for a in range(0, n_fr, per):
        w = chroma[a : a + per].sum(axis=0)
        if w.sum() < 8:
            continue
        fit = DIATONIC @ w
        moved.append(fit[home] < fit.max() - 1e-9)
        chromatic.append(1.0 - fit.max() / w.sum())
    if moved:
        out["m_modulation"] = float(np.mean(moved))
        out["m_local_chromatic"] = float(np.mean(chromatic))

    # repetition: similarity of the chroma with itself shifted by 1–16 s
    norm = np.linalg.norm(chroma, axis=1, keepdims=True)
    unit = np.divide(chroma, norm, out=np.zeros_like(chroma), where=norm > 0)
    best, best_lag = 0.0, 0.0
    short = range(int(1 / FRAME_S), int(16 / FRAME_S) + 1)
    for lag, sim in _lag_similarities(unit, active, short, 4):
        if sim > best + 1e-9:
            best, best_lag = sim, lag * FRAME_S
    out["m_repetition"], out["m_repetition_lag_s"] = best, best_lag
    best = 0.0
    long = range(int(16 / FRAME_S), int(64 / FRAME_S) + 1, 2)
    for _, sim in _lag_similarities(unit, active, long, 16):
        best = max(best, sim)
    out["m_repetition_long"] = best
    return out


def _lag_similarities(
    unit: np.ndarray, active: np.ndarray, lags: range, least: int, block: int = 16
) -> list[tuple[int, float]]:
    """(lag, mean over the frames i where frames i and i + lag both sound of the dot product
    of their unit chroma rows) for each of the ascending ``lags`` below ``n_frames - 4``
    with at least ``least`` such frames. ``block`` lags at a time, each frame pair's 12
    products summed as one row as before, then the kept rows in frame order averaged: the
    same numbers as a loop over the lags, with a few numpy calls per lag instead of eight
    (the per-call cost was most of the features' time after the frames' counts)."""
    n = len(unit)
    kept = [lag for lag in lags if lag < n - 4]
    out: list[tuple[int, float]] = []
    frames = np.arange(n)
    for first in range(0, len(kept), block):
        some = np.asarray(kept[first : first + block])
        later = frames[None, :] + some[:, None]  # (lags, frames): the frame lag later
        inside = later < n
        later = np.minimum(later, n - 1)
        both = inside & active[None, :] & active[later]
        dots = (unit[None, :, :] * unit[later]).sum(axis=2)
        counts = both.sum(axis=1)
        for k in np.flatnonzero(counts >= least):  # the mean as ndarray.mean computes it
            out.append((int(some[k]), float(dots[k][both[k]].sum() / counts[k])))
    return out


def musical_table(notes: pd.DataFrame, ids: list[str], key_tonic: np.ndarray) -> pd.DataFrame:
    """MUSICAL_NAMES for each file of ``ids`` (rows in that order)."""
    # only the columns read: each song's rows are taken and sorted again (the note table's
    # other columns, string ids among them, cost most of that)
    used = notes[["is_drum", "onset_s", "duration_s", "pitch"]]
    by_file = {fid: g for fid, g in used.groupby(notes["file_id"].astype(str), sort=False)}
    rows = []
    for fid, tonic in zip(ids, key_tonic, strict=True):
        g = by_file.get(fid)
        empty = dict.fromkeys(MUSICAL_NAMES, 0.0)
        rows.append(empty if g is None else musical_features(g, int(tonic)))
    return pd.DataFrame(rows, columns=MUSICAL_NAMES, dtype=np.float64)
