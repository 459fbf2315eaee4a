"""From MIDI to events and back, and pictures of them: what `midiml continue` and the samples use.

Events are ``[pitch, velocity, delta_onset, duration]`` (seconds). Output MIDI has one
piano track at 120 qpm (480 ticks per quarter = 960 ticks per second), so seconds map to
ticks exactly and any player can open it.
"""

from __future__ import annotations

from pathlib import Path

import mido
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
    """Write events as a one-track MIDI file (atomically)."""
    from midiml.io import atomic_path

    ev = np.asarray(events, np.float64)
    start = onsets(ev)
    msgs: list[tuple[int, int, mido.Message]] = []
    for (pitch, vel, _, dur), t0 in zip(ev, start, strict=True):
        p = int(np.clip(round(pitch), 0, 127))
        v = int(np.clip(round(vel), 1, 127))
        on = int(round(t0 * TICKS_PER_SECOND))
        off = max(on + 1, int(round((t0 + max(dur, 0.0)) * TICKS_PER_SECOND)))
        msgs.append((on, 1, mido.Message("note_on", note=p, velocity=v)))
        msgs.append((off, 0, mido.Message("note_off", note=p, velocity=0)))
    mid = mido.MidiFile(ticks_per_beat=TPQ)
    track = mido.MidiTrack()
    mid.tracks.append(track)
    track.append(mido.MetaMessage("set_tempo", tempo=TEMPO, time=0))
    track.append(mido.Message("program_change", program=program, time=0))
    now = 0
    for tick, _, msg in sorted(msgs, key=lambda m: (m[0], m[1])):
        track.append(msg.copy(time=tick - now))
        now = tick
    track.append(mido.MetaMessage("end_of_track", time=0))
    with atomic_path(path) as tmp:
        mid.save(tmp)


def plot_piano_roll(prompt: np.ndarray, continuation: np.ndarray, title: str = "") -> object:
    """Piano roll of prompt (grey) followed by continuation (colour); returns the figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    allev = np.concatenate([prompt, continuation])
    t = onsets(allev)
    fig, ax = plt.subplots(figsize=(9, 3.2))
    n_p = len(prompt)
    for i, (ev, t0) in enumerate(zip(allev, t, strict=True)):
        colour = "0.55" if i < n_p else "tab:red"
        ax.broken_barh(
            [(t0, max(float(ev[DURATION]), 0.02))],
            (ev[PITCH] - 0.4, 0.8),
            facecolors=colour,
            alpha=0.35 + 0.6 * ev[VELOCITY] / 127,
        )
    if n_p and len(continuation):
        ax.axvline(t[n_p], color="k", lw=0.8, ls="--")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("MIDI pitch")
    ax.set_title(title or "prompt (grey) and continuation (red)")
    if len(allev):
        ax.set_ylim(allev[:, PITCH].min() - 2, allev[:, PITCH].max() + 2)
        ax.set_xlim(0, float(t[-1] + max(allev[-1, DURATION], 0.1)))
    fig.tight_layout()
    return fig


class ContinueError(ValueError):
    """A user-facing reason why a file cannot be continued (missing model, bad file...)."""


def continue_midi(
    song: str | Path,
    model: str,
    seconds: float,
    output: str | Path,
    models_dir: str | Path = "models",
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
        raise ContinueError(f"cannot read {song}: {exc}") from exc
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


DEFAULT_MODEL = "markov"  # best by the listening metrics with the default guards (and fastest)


def find_model_dir(models_dir: str | Path, model: str) -> Path:
    """``models/<name>`` or ``models/generators/<name>``; ContinueError naming what exists."""
    root = Path(models_dir)
    for cand in (root / model, root / "generators" / model):
        if (cand / "meta.json").exists():
            return cand
    found = sorted(
        p.name for p in [*root.glob("*"), *root.glob("generators/*")] if (p / "meta.json").exists()
    )
    raise ContinueError(
        f"no trained model {model!r} in {models_dir}/ (found: {', '.join(found) or 'none'}); "
        "train it with `dvc repro`"
    )


def load_continuer(models_dir: str | Path, model: str, top_k: int = 0, guards: bool = True):
    """The saved generator as a ``Continuer`` (see generate/prompted.py)."""
    from midiml.generate.base import load_generator, read_meta
    from midiml.generate.prompted import SamplingGuards, WindowContinuer

    model_dir = find_model_dir(models_dir, model)
    chosen = SamplingGuards() if guards else SamplingGuards(False, False, False, False)
    if read_meta(model_dir)["kind"] == "transformer":
        from midiml.generate.transformer import TransformerContinuer

        return TransformerContinuer.load(model_dir, chosen, top_k)
    gen = load_generator(model_dir)
    if hasattr(gen, "continue_notes"):
        return gen
    return WindowContinuer(gen, chosen, top_k=top_k)


def variation_paths(output: str | Path, variations: int) -> list[Path]:
    """``out.mid`` for one variation, ``out_1.mid .. out_N.mid`` for several."""
    out = Path(output)
    if variations == 1:
        return [out]
    return [
        out.with_name(f"{out.stem}_{i}{out.suffix or '.mid'}") for i in range(1, variations + 1)
    ]


def continue_file(
    song: str | Path,
    continuer,
    output: str | Path,
    seconds: float | None = 20.0,
    bars: float | None = None,
    variations: int = 1,
    temperature: float = 1.0,
    top_p: float = 0.95,
    seed: int = 0,
    genre: str | None = None,
    wav: bool = False,
) -> list[dict[str, object]]:
    """Write ``variations`` files: the user's file untouched plus one continuation track each."""
    from midiml.generate.songfile import (
        TempoMap,
        append_continuation,
        beats_per_bar,
        prompt_track,
        read_notes,
    )
    from midiml.io import atomic_path

    if variations < 1:
        raise ContinueError(f"--variations must be at least 1, got {variations}")
    if not Path(song).is_file():
        raise ContinueError(f"cannot read {song}: no such file")
    try:
        original = mido.MidiFile(str(song))
        notes = read_notes(original)
    except (OSError, ValueError, EOFError, KeyError, IndexError) as exc:
        raise ContinueError(f"cannot read {song}: not a readable MIDI file ({exc})") from exc
    prompt = prompt_track(notes)
    if len(prompt["pitch"]) == 0:
        raise ContinueError(f"{song}: no (non-drum) notes to continue from")
    end = float((prompt["onset_s"] + prompt["duration_s"]).max())
    if bars is not None:
        qpm = TempoMap.of(original).qpm_at(end)
        seconds = bars * beats_per_bar(original) * 60.0 / qpm
    if seconds is None or seconds <= 0:
        raise ContinueError(f"the continuation must be longer than 0 s, got {seconds}")
    program = int(np.bincount(prompt["program"]).argmax())
    results = []
    for i, path in enumerate(variation_paths(output, variations)):
        try:
            new = continuer.continue_notes(prompt, seconds, temperature, top_p, seed + i, genre)
        except ValueError as exc:  # e.g. a genre the model does not know
            raise ContinueError(f"{song}: {exc}") from exc
        out = append_continuation(original, new, program)
        with atomic_path(path) as tmp:
            out.save(str(tmp))
        res: dict[str, object] = {
            "file": str(path),
            "prompt_notes": len(prompt["pitch"]),
            "new_notes": len(new["pitch"]),
        }
        if wav:
            from midiml.represent.audio import render_wav

            wav_path = Path(path).with_suffix(".wav")
            render_wav(path, wav_path)
            res["wav"] = str(wav_path)
        results.append(res)
    return results
