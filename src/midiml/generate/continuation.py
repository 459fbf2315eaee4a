"""From MIDI to events and back, and pictures of them: what `midiml continue` and the samples use.

Events are ``[pitch, velocity, delta_onset, duration]`` (seconds). Output MIDI has one
piano track at 120 qpm (480 ticks per quarter = 960 ticks per second), so seconds map to
ticks exactly and any player can open it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from midiml.represent.windows import DELTA, DURATION, PITCH, VELOCITY, event_stream

TPQ = 480
TEMPO = 500_000  # microseconds per quarter = 120 qpm
TICKS_PER_SECOND = TPQ * 1_000_000 / TEMPO


def read_events(path: str | Path) -> np.ndarray:
    """A MIDI file's non-drum notes as events; MidiParseError / FileNotFoundError if unreadable."""
    from midiml.data.midi import read_user_file

    return event_stream(read_user_file(path).notes)


def onsets(events: np.ndarray) -> np.ndarray:
    return np.cumsum(np.asarray(events, np.float64)[:, DELTA])


def write_midi(events: np.ndarray, path: str | Path, program: int = 0) -> None:
    """Write events as a one-track MIDI file (atomically).

    Vectorised through symusic: a 200,000-note prompt is written in well under a second
    (mido's per-message objects took ~40 s).
    """
    import symusic

    from midiml.io import atomic_path

    ev = np.asarray(events, np.float64).reshape(-1, 4)
    start = onsets(ev) if len(ev) else np.zeros(0)
    on = np.round(start * TICKS_PER_SECOND).astype(np.int64)
    off = np.round((start + np.maximum(ev[:, DURATION], 0.0)) * TICKS_PER_SECOND).astype(np.int64)
    off = np.maximum(off, on + 1)
    track = symusic.Track(program=int(program))
    track.notes = symusic.Note.from_numpy(
        on.astype(np.int32),
        (off - on).astype(np.int32),
        np.clip(np.round(ev[:, PITCH]), 0, 127).astype(np.int8),
        np.clip(np.round(ev[:, VELOCITY]), 1, 127).astype(np.int8),
    )
    score = symusic.Score(TPQ)
    score.tempos.append(symusic.Tempo(0, 60_000_000 / TEMPO))
    score.tracks.append(track)
    with atomic_path(path) as tmp:
        score.dump_midi(str(tmp))


class ContinueError(ValueError):
    """A user-facing reason why a file cannot be continued (missing model, bad file...)."""


def continue_midi(
    song: str | Path,
    model: str,
    seconds: float,
    output: str | Path,
    models_dir: str | Path = "models/generators",
    temperature: float = 1.0,
    seed: int = 0,
    top_k: int = 0,
    model_durations: bool = False,
) -> dict[str, float]:
    """Continue ``song`` with the trained generator ``models_dir/model`` for ``seconds``.

    Writes prompt + continuation to ``output`` and returns a short summary. Raises
    ContinueError with a clear message for a missing model, an unreadable file or too few notes.
    """
    from midiml.data.midi import MidiParseError
    from midiml.generate.base import load_generator
    from midiml.generate.sampling import continue_seconds

    model_dir = Path(models_dir) / model
    if not (model_dir / "meta.json").exists():
        found = sorted(p.name for p in Path(models_dir).glob("*") if (p / "meta.json").exists())
        raise ContinueError(
            f"no trained model {model!r} in {models_dir}/ (found: "
            f"{', '.join(found) or 'none'}); train it with `dvc repro`"
        )
    if seconds <= 0:
        raise ContinueError(f"--seconds must be positive, got {seconds}")
    try:
        prompt = read_events(song)
    except (MidiParseError, FileNotFoundError, OSError) as exc:
        raise ContinueError(f"cannot read {exc}") from None  # exc is "<file>: <reason>"
    gen = load_generator(model_dir)
    if len(prompt) < gen.n_in:
        raise ContinueError(
            f"{song} has {len(prompt)} (non-drum) notes; model {model!r} needs "
            f"at least {gen.n_in} to continue from"
        )
    cont = continue_seconds(
        gen, prompt, seconds, temperature, top_k, seed, model_durations=model_durations
    )
    write_midi(np.concatenate([prompt, cont]), output)
    return {
        "prompt_notes": len(prompt),
        "new_notes": len(cont),
        "prompt_seconds": float(onsets(prompt)[-1] + prompt[-1, DURATION]),
        "new_seconds": float(onsets(cont)[-1]) if len(cont) else 0.0,
    }
