"""The one music-theory module: profiles, scales, both key finders and "in key"."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

from midiml.represent import tonality as t

SRC = Path(__file__).resolve().parents[1] / "src" / "midiml"


def test_scales_and_masks():
    assert t.SCALE_MASKS.shape == (24, 12)
    assert np.flatnonzero(t.SCALE_MASKS[0]).tolist() == [0, 2, 4, 5, 7, 9, 11]  # C major
    # A minor: natural minor plus the leading tone G#
    assert np.flatnonzero(t.SCALE_MASKS[12 + 9]).tolist() == [0, 2, 4, 5, 7, 8, 9, 11]
    assert (t.SCALE_MASKS[:12] == t.DIATONIC).all()
    assert t.Key(9, "minor", 0.0).scale.sum() == 8
    assert t.Key(2, "major", 0.0).scale[6] and not t.Key(0, "major", 0.0).scale[6]
    # row t of rotations() is the row moved up by t semitones
    rot = t.rotations(t.MAJOR_PROFILE)
    assert (rot[7] == np.roll(t.MAJOR_PROFILE, 7)).all()


def test_in_key_and_key_consistency():
    c_major = [60, 62, 64, 65, 67, 69, 71, 72]
    assert t.in_key_share(np.array([61, 60]), t.Key(0, "major", 0.0)) == 0.5
    assert np.isnan(t.in_key_share(np.array([]), t.Key(0, "major", 0.0)))
    assert t.key_consistency(c_major, c_major) == 1.0
    # the raised 7th counts as in key in minor (a minor tune's leading tone)
    a_minor = [69, 72, 76, 74, 72, 71, 68, 69, 64, 69]
    assert t.key_consistency(a_minor, [68, 69]) == 1.0
    # durations weigh the prompt: a long F# over short Cs makes the key G, not C
    g = t.estimate_key(np.array([60, 62, 66, 67]), np.array([0.1, 1.0, 4.0, 4.0]))
    assert g.name == "G major"


def test_best_diatonic_share():
    assert t.best_diatonic_share([]) == 0.0
    assert t.best_diatonic_share([60, 62, 64, 65, 67, 69, 71]) == 1.0
    assert t.best_diatonic_share(list(range(60, 72))) == pytest.approx(7 / 12)


def test_music21_keys_match_music21_on_weighted_histograms():
    from music21 import analysis, note, stream

    rng = np.random.default_rng(0)
    hists = rng.integers(0, 6, size=(8, 12)).astype(float)
    ours = t.music21_keys(hists)
    for i, h in enumerate(hists):
        s = stream.Stream()
        for pc, w in enumerate(h):
            if w:
                s.append(note.Note(60 + pc, quarterLength=w))
        k = analysis.discrete.KrumhanslSchmuckler().getSolution(s)
        assert ours["key_tonic"][i] == k.tonic.pitchClass
        assert ours["key_mode"][i] == (k.mode == "major")
        assert ours["key_corr"][i] == pytest.approx(k.correlationCoefficient, abs=1e-9)


def test_profiles_and_scales_are_written_once():
    """No module but tonality types a key profile or a scale: one definition for all users."""
    profile_head = "6.35"
    offenders = []
    for path in SRC.rglob("*.py"):
        if path.name == "tonality.py":
            continue
        text = path.read_text()
        if profile_head in text:
            offenders.append(f"{path.name}: Krumhansl profile")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Tuple | ast.List):
                vals = [e.value for e in node.elts if isinstance(e, ast.Constant)]
                if vals in (
                    [0, 2, 4, 5, 7, 9, 11],
                    [0, 2, 3, 5, 7, 8, 10],
                    [0, 2, 3, 5, 7, 8, 10, 11],
                ):
                    offenders.append(f"{path.name}:{node.lineno} scale {vals}")
    assert not offenders, offenders


def test_one_key_consistency():
    from midiml.evaluate import listening

    assert listening.key_consistency is t.key_consistency
    names = [
        p.name
        for p in SRC.rglob("*.py")
        if p.name != "tonality.py" and "def key_consistency" in p.read_text()
    ]
    assert not names, names
