"""`midiml continue`: the user's own file, untouched, plus a new track that continues it.

Every saved generator answers through one interface, ``continue_notes`` (see
:mod:`midiml.generate.prompted`): a saved model whose ``meta.json`` names a ``continuer`` class
is loaded by that class's ``load(model_dir, guards, top_k)`` (the token Transformer, the roll
VAE); next-pitch window models are wrapped in ``WindowContinuer``. ``write_midi`` writes the event
streams of the evaluation's samples.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import symusic
from hydra.utils import get_class

from midiml.data.midi import Rules, read_user_file, scan_smf
from midiml.generate.base import load_generator, read_meta
from midiml.generate.prompted import SamplingGuards, WindowContinuer
from midiml.generate.songfile import (
    DRUM_CHANNEL,
    TempoMap,
    beats_per_bar_of,
    continuation_track,
    free_channel_of,
    notes_columns,
    prompt_track,
    with_track,
)
from midiml.io import atomic_path
from midiml.represent.audio import render_wav
from midiml.represent.windows import DELTA, DURATION, PITCH, VELOCITY

TPQ = 480
TEMPO = 500_000  # microseconds per quarter = 120 qpm
TICKS_PER_SECOND = TPQ * 1_000_000 / TEMPO
# The default generator is chosen by `evaluate_generators` (the best continuation score on
# held-out songs among the learned generators, with or without guards) and written next to the
# models folder; without that file (no `dvc repro` yet) markov with guards is the default.
DEFAULT_CHOICE_FILE = "default_generator.json"
FALLBACK_MODEL = "markov"
FALLBACK_GUARDS = True


def onsets(events: np.ndarray) -> np.ndarray:
    return np.cumsum(np.asarray(events, np.float64)[:, DELTA])


def write_midi(events: np.ndarray, path: str | Path, program: int = 0) -> None:
    """Write events ``[pitch, velocity, delta_onset, duration]`` as a one-track MIDI file at
    120 qpm (atomically). Vectorised through symusic: 200,000 notes in well under a second."""

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


def saved_models(models_dir: str | Path) -> list[str]:
    """Names of the generators saved under ``models_dir`` (folders with a ``meta.json``)."""
    return sorted(p.name for p in Path(models_dir).glob("*") if (p / "meta.json").exists())


def find_model_dir(models_dir: str | Path, model: str) -> Path:
    """``<models_dir>/<name>``; ContinueError naming what exists."""
    cand = Path(models_dir) / model
    if (cand / "meta.json").exists():
        return cand
    found = saved_models(models_dir)
    raise ContinueError(
        f"no trained model {model!r} in {models_dir}/ (found: {', '.join(found) or 'none'}); "
        "train it with `dvc repro`"
    )


def default_choice(models_dir: str | Path = "models/generators") -> tuple[str, bool]:
    """(model, guards) that `midiml continue` uses when not told: the evaluation's choice in
    ``<models_dir>/../default_generator.json`` if present and readable, else markov with
    guards."""
    path = Path(models_dir).parent / DEFAULT_CHOICE_FILE
    try:
        choice = json.loads(path.read_text())
        return str(choice["model"]), bool(choice["guards"])
    except (OSError, ValueError, KeyError, TypeError):
        return FALLBACK_MODEL, FALLBACK_GUARDS


def load_continuer(models_dir: str | Path, model: str, top_k: int = 0, guards: bool = True):
    """The saved generator as a ``Continuer`` (see generate/prompted.py), found by its config."""
    model_dir = find_model_dir(models_dir, model)
    chosen = SamplingGuards() if guards else SamplingGuards(False, False, False, False)
    meta = read_meta(model_dir)
    if meta.get("continuer"):  # a model with its own way to continue (Transformer, VAE)
        return get_class(meta["continuer"]).load(model_dir, chosen, top_k)
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
    rules: Rules | None = None,
) -> list[dict[str, object]]:
    """Write ``variations`` files: the user's file untouched plus one continuation track each.

    The file is first judged by the same rules as the ingest stage (``read_user_file``); its
    track chunks are then copied byte for byte (a file the scan had to repair, e.g. notes never
    switched off, in its repaired form) and the continuation appended as one more track.
    """
    if variations < 1:
        raise ContinueError(f"--variations must be at least 1, got {variations}")
    rules = rules or Rules()
    parsed = read_user_file(song, rules)  # MidiParseError: one line naming the file and why
    # the checked (canonical) bytes we append to: of a damaged file, what it still holds
    scan = scan_smf(Path(song).read_bytes(), rules.strict)
    score = symusic.Score.from_midi(scan.data)
    tempo_map = TempoMap.of_score(score)
    notes = notes_columns(parsed.notes)
    salvaged = parsed.info.get("salvaged", "")  # what a damaged file lost, said by every path
    if hasattr(continuer, "continue_songs"):  # continues every instrument (token model)
        results = _continue_all_tracks(
            song, scan, score, tempo_map, notes, continuer, output, seconds, bars,
            variations, temperature, top_p, seed, genre, wav,
        )  # fmt: skip
        return [{**res, "salvaged": salvaged} for res in results]
    prompt = prompt_track(notes)
    if len(prompt["pitch"]) == 0:
        raise ContinueError(f"{song}: no (non-drum) notes to continue from")
    end = float((prompt["onset_s"] + prompt["duration_s"]).max())
    if bars is not None:
        seconds = bars * beats_per_bar_of(score) * 60.0 / tempo_map.qpm_at(end)
    if seconds is None or seconds <= 0:
        raise ContinueError(f"the continuation must be longer than 0 s, got {seconds}")
    program = int(np.bincount(prompt["program"]).argmax())
    results = []
    for i, path in enumerate(variation_paths(output, variations)):
        try:
            new = continuer.continue_notes(prompt, seconds, temperature, top_p, seed + i, genre)
        except ValueError as exc:  # e.g. a genre the model does not know
            raise ContinueError(f"{song}: {exc}") from exc
        chunk = continuation_track(tempo_map, new, program, free_channel_of(scan.channels))
        res = {"prompt_notes": len(prompt["pitch"]), "new_notes": len(new["pitch"])}
        results.append(_save_variation(path, with_track(scan.data, chunk), res, wav))
    return [{**res, "salvaged": salvaged} for res in results]


def _save_variation(
    path: str | Path, data: bytes, res: dict[str, object], wav: bool
) -> dict[str, object]:
    """Write one variation atomically (and its audio with ``--wav``); its result entry."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    res = {"file": str(path), **res}
    if wav:
        wav_path = Path(path).with_suffix(".wav")
        render_wav(path, wav_path)
        res["wav"] = str(wav_path)
    return res


def _continue_all_tracks(
    song, scan, score, tempo_map, notes, continuer, output, seconds, bars,
    variations, temperature, top_p, seed, genre, wav,
) -> list[dict[str, object]]:  # fmt: skip
    """Every instrument of the file continued: one new track per (program, drums) the model
    played, in that program, drums on channel 10, the others on channels no track uses; the
    new notes are placed by their beats on the file's own tempo map. Variations: one batch."""
    if len(notes.get("pitch", ())) == 0:
        raise ContinueError(f"{song}: no notes to continue from")
    end = float((notes["onset_s"] + notes["duration_s"]).max())
    if bars is not None:
        seconds = bars * beats_per_bar_of(score) * 60.0 / tempo_map.qpm_at(end)
    if seconds is None or seconds <= 0:
        raise ContinueError(f"the continuation must be longer than 0 s, got {seconds}")
    try:
        songs = continuer.continue_songs(
            notes, seconds, variations, temperature, top_p, seed, genre
        )
    except ValueError as exc:  # e.g. a genre the model does not know
        raise ContinueError(f"{song}: {exc}") from exc
    results = []
    for path, new in zip(variation_paths(output, variations), songs, strict=True):
        data = scan.data
        used = scan.channels
        for program, drum in sorted(
            set(zip(new["program"].tolist(), new["is_drum"].tolist(), strict=False))
        ):
            sel = (new["program"] == program) & (new["is_drum"] == drum)
            ticks = np.asarray(new["onset_beats"])[sel] * tempo_map.ticks_per_beat
            end_ticks = ticks + np.asarray(new["duration_beats"])[sel] * tempo_map.ticks_per_beat
            on_s = tempo_map.to_seconds(ticks)
            part = {
                "pitch": new["pitch"][sel],
                "velocity": new["velocity"][sel],
                "onset_s": on_s,
                "duration_s": tempo_map.to_seconds(end_ticks) - on_s,
            }
            channel = DRUM_CHANNEL if drum else free_channel_of(used)
            used |= 1 << channel
            name = "midiml continuation drums" if drum else f"midiml continuation program {program}"
            data = with_track(data, continuation_track(tempo_map, part, program, channel, name))
        res = {
            "prompt_notes": len(notes["pitch"]),
            "new_notes": len(new["pitch"]),
            "new_tracks": len(
                set(zip(new["program"].tolist(), new["is_drum"].tolist(), strict=False))
            ),
        }
        results.append(_save_variation(path, data, res, wav))
    return results
