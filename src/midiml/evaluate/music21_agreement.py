"""music21's own values for the features we also compute, to check ours against them.

The seed study extracted its feature dictionary with music21. For the features that
music21 also computes we ask music21 (parse + its analysis / jSymbolic extractors sharing
one ``DataInstance``, as music21 intends) and compare, feature by feature, with
:func:`midiml.represent.features.extract_features` on the same file. music21 quantises
MIDI on import, so on performed files small differences are expected; each feature has a
stated tolerance.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

# feature -> absolute tolerance for "agrees" (key_tonic/key_mode/ts_*/range/variety exact)
TOLERANCES: dict[str, float] = {
    "key_tonic": 0.0,
    "key_mode": 0.0,
    "key_corr": 0.02,
    **{f"pc_{i}": 0.01 for i in range(12)},
    "pitch_min": 0.0,
    "pitch_max": 0.0,
    "pitch_range": 0.0,
    "pitch_variety": 0.0,
    "interval_mean": 0.25,
    "ts_numerator": 0.0,
    "ts_denominator": 0.0,
}
COMPARED = list(TOLERANCES)


def music21_features(path: str | Path) -> dict[str, float]:
    """Parse ``path`` with music21 and return its values for the COMPARED features."""
    from music21 import analysis, converter, features, meter, note
    from music21.features import jSymbolic

    score = converter.parse(str(path))
    data = features.DataInstance(score)

    def extract(cls: type) -> list[float]:
        fe = cls()
        fe.setData(data)
        return list(fe.extract().vector)

    out: dict[str, float] = {}
    flat = score.flatten().notes.getElementsNotOfClass(note.Unpitched)
    if len(flat):
        k = analysis.discrete.KrumhanslSchmuckler().getSolution(score)
        out["key_tonic"] = float(k.tonic.pitchClass)
        out["key_mode"] = 1.0 if k.mode == "major" else 0.0
        out["key_corr"] = float(k.correlationCoefficient)
    hist = np.asarray(data["pitches.pitchClassHistogram"], dtype=float)
    for i in range(12):
        out[f"pc_{i}"] = float(hist[i] / hist.sum()) if hist.sum() else 0.0
    midi = data["pitches.midiPitchHistogram"]
    if midi:
        out["pitch_min"] = float(min(midi))
        out["pitch_max"] = float(max(midi))
        out["pitch_variety"] = float(len(midi))
    out["pitch_range"] = float(extract(jSymbolic.RangeFeature)[0])
    try:
        out["interval_mean"] = float(extract(jSymbolic.AverageMelodicIntervalFeature)[0])
    except Exception:  # music21 raises when no part has two consecutive single notes
        out["interval_mean"] = float("nan")
    ts = score.recurse().getElementsByClass(meter.TimeSignature).first()
    out["ts_numerator"] = float(ts.numerator) if ts else 4.0
    out["ts_denominator"] = float(ts.denominator) if ts else 4.0
    return out


def compare(
    ours: pd.DataFrame, theirs: pd.DataFrame, tolerances: dict[str, float] | None = None
) -> dict[str, dict[str, float]]:
    """Per feature: files compared, share within tolerance, median and max absolute gap.

    ``ours`` and ``theirs`` are indexed by file with feature columns (NaN = not available).
    """
    tolerances = tolerances or TOLERANCES
    out: dict[str, dict[str, float]] = {}
    for name, tol in tolerances.items():
        if name not in ours.columns or name not in theirs.columns:
            continue
        a, b = ours[name].astype(float), theirs[name].reindex(ours.index).astype(float)
        ok = a.notna() & b.notna()
        gap = (a[ok] - b[ok]).abs()
        out[name] = {
            "tolerance": tol,
            "files": int(ok.sum()),
            "agree_frac": round(float((gap <= tol + 1e-9).mean()), 4) if ok.any() else 0.0,
            "median_abs_diff": round(float(gap.median()), 4) if ok.any() else 0.0,
            "max_abs_diff": round(float(gap.max()), 4) if ok.any() else 0.0,
        }
    return out
