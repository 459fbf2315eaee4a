"""MIDI -> WAV offline, with the General MIDI soundfont that the pretty_midi wheel ships.

symusic's synthesizer renders a score with a SoundFont in-process (no FluidSynth install).
symusic is pinned to 0.5.9: 0.6.0's ``Synthesizer.render`` raises a TypeError converting its
result to numpy here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from midiml.io import atomic_path

SAMPLE_RATE = 22_050


def soundfont_path() -> Path:
    """TimGM6mb.sf2 (General MIDI, 6 MB) from the installed pretty_midi package."""
    import importlib.util

    spec = importlib.util.find_spec("pretty_midi")
    if spec is None or spec.origin is None:
        raise FileNotFoundError("pretty_midi is not installed; it ships the TimGM6mb.sf2 soundfont")
    path = Path(spec.origin).parent / "TimGM6mb.sf2"
    if not path.exists():
        raise FileNotFoundError(f"{path}: soundfont missing from the pretty_midi package")
    return path


def render_wav(
    midi_path: str | Path, wav_path: str | Path, sample_rate: int = SAMPLE_RATE
) -> float:
    """Render ``midi_path`` to a 16-bit stereo WAV at ``wav_path``; returns its peak (0..1)."""
    import symusic

    score = symusic.Score(str(midi_path))
    synth = symusic.Synthesizer(str(soundfont_path()), sample_rate=sample_rate)
    audio = np.asarray(synth.render(score, stereo=True), np.float32)  # (channels, samples)
    peak = float(np.abs(audio).max()) if audio.size else 0.0
    if peak > 1.0:
        audio = audio / peak
    with atomic_path(wav_path) as tmp:
        symusic.dump_wav(str(tmp), np.asfortranarray(audio), sample_rate, use_int16=True)
    return peak
