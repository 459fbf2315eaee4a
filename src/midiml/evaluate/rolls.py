"""Pure metrics for generated piano-roll continuations (arrays and note tables only).

They catch the seed VAE's failure directly: a model that holds notes forever plays few,
long notes (density ratio << 1, length ratio >> 1), most of its sounding cells belong to
very long runs (sustained-cell share), and it rarely starts a note where the real music
does (onset F1). Register and step are simple listening checks against the prompt; "in
the prompt's key" is ``represent.tonality.key_consistency``, as for every generator.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import ndimage


def onset_f1_counts(pred: np.ndarray, true: np.ndarray, tolerance: int = 1) -> np.ndarray:
    """[hit_pred, n_pred, hit_true, n_true] for pooling onset F1 over many windows."""
    pred, true = np.asarray(pred, bool), np.asarray(true, bool)
    kernel = np.ones((1, 2 * tolerance + 1), bool)
    near_true = ndimage.binary_dilation(true, kernel) if tolerance else true
    near_pred = ndimage.binary_dilation(pred, kernel) if tolerance else pred
    return np.array(
        [(pred & near_true).sum(), pred.sum(), (true & near_pred).sum(), true.sum()], np.int64
    )


def f1_from_counts(counts: np.ndarray) -> float:
    """F1 from pooled [hit_pred, n_pred, hit_true, n_true]; 0 when nothing is predicted."""
    hit_pred, n_pred, hit_true, n_true = (float(c) for c in counts)
    precision = hit_pred / n_pred if n_pred else 0.0
    recall = hit_true / n_true if n_true else 0.0
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def onset_f1(pred: np.ndarray, true: np.ndarray, tolerance: int = 1) -> float:
    return f1_from_counts(onset_f1_counts(pred, true, tolerance))


def frame_f1(pred: np.ndarray, true: np.ndarray) -> float:
    return onset_f1(pred, true, tolerance=0)


def sustained_cells(frame: np.ndarray, min_steps: int) -> tuple[int, int]:
    """(cells in runs of >= ``min_steps`` consecutive active steps on one pitch, active cells)."""
    on = np.asarray(frame, bool)
    active = int(on.sum())
    if active == 0:
        return 0, 0
    padded = np.pad(on, ((0, 0), (1, 1))).astype(np.int8)
    d = np.diff(padded, axis=1)
    starts = np.argwhere(d == 1)
    ends = np.argwhere(d == -1)
    lengths = ends[:, 1] - starts[:, 1]  # argwhere is row-major: starts and ends pair up
    return int(lengths[lengths >= min_steps].sum()), active


def sustained_share(frame: np.ndarray, min_steps: int) -> float:
    long, active = sustained_cells(frame, min_steps)
    return long / active if active else 0.0


def density_ratio(generated: pd.DataFrame, real: pd.DataFrame) -> float:
    """Generated notes per second ÷ real notes per second (same span, so a count ratio)."""
    return len(generated) / len(real) if len(real) else float("nan")


def length_ratio(generated: pd.DataFrame, real: pd.DataFrame) -> float:
    if len(generated) == 0 or len(real) == 0:
        return float("nan")
    return float(generated["duration_s"].mean() / real["duration_s"].mean())


def register_gap(generated: pd.DataFrame, prompt: pd.DataFrame) -> float:
    """|median pitch of the new notes − median pitch of the prompt| in semitones."""
    if len(generated) == 0 or len(prompt) == 0:
        return float("nan")
    return float(abs(np.median(generated["pitch"]) - np.median(prompt["pitch"])))


def step_share(notes: pd.DataFrame) -> float:
    """Share of successive intervals (notes by onset, then pitch) of 1 or 2 semitones."""
    if len(notes) < 2:
        return float("nan")
    p = notes.sort_values(["onset_s", "pitch"], kind="stable")["pitch"].to_numpy(np.int64)
    iv = np.abs(np.diff(p))
    return float(((iv >= 1) & (iv <= 2)).mean())
