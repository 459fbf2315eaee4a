"""`midiml continue -m transformer` on a 4-track prompt with drums and a tempo change: every
instrument continues on its own new track, the original tracks and tempo map stay
byte-identical, and the command's inference path never imports torch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import mido
import numpy as np
import pytest

pytest.importorskip("miditok")

from midiml.represent import tokens as tk  # noqa: E402

INSTRUMENTS = [(0, 0, [60, 64, 67]), (1, 33, [36]), (2, 48, [72]), (9, 0, [36, 42])]


def band_file(path: Path) -> Path:
    """Conductor (120 -> 90 qpm at bar 3, 4/4) + piano, bass, strings, drums; 4 bars."""
    mid = mido.MidiFile(type=1, ticks_per_beat=480)
    cond = mido.MidiTrack(
        [
            mido.MetaMessage("time_signature", numerator=4, denominator=4, time=0),
            mido.MetaMessage("set_tempo", tempo=500_000, time=0),
            mido.MetaMessage("set_tempo", tempo=666_667, time=480 * 8),
        ]
    )
    mid.tracks.append(cond)
    for channel, program, pitches in INSTRUMENTS:
        track = mido.MidiTrack()
        if channel != 9:
            track.append(mido.Message("program_change", channel=channel, program=program, time=0))
        events = []
        for beat in range(16):
            for k, p in enumerate(pitches):
                at = beat * 480 + 240 if channel == 9 and k == 1 else beat * 480
                step = 2 * (beat // 4 % 2) if channel != 9 else 0
                events.append((at, 1, p + step))
                events.append((at + 200, 0, p + step))
        now = 0
        for at, on, p in sorted(events):
            kind = "note_on" if on else "note_off"
            track.append(mido.Message(kind, channel=channel, note=p, velocity=80, time=at - now))
            now = at
        mid.tracks.append(track)
    mid.save(path)
    return path


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A tiny untrained network saved exactly as the training stage saves a model."""
    import torch

    from midiml.generate.transformer_network import TransformerNetwork
    from midiml.generate.transformer_numpy import save_model

    out = tmp_path_factory.mktemp("models") / "transformer"
    out.mkdir()
    tok = tk.make_tokenizer()
    genres = ["classical", "lofi", "videogame"]
    torch.manual_seed(0)
    net = TransformerNetwork(len(tok) + len(genres), 64, 32, 2, 4, 0.0)
    save_model(out, net.numpy_weights(), net.config, tok, genres, {"_target_": "tiny"})
    return out


def test_every_instrument_continues_and_the_file_stays_intact(model_dir, tmp_path):
    song = band_file(tmp_path / "band.mid")
    out = tmp_path / "out.mid"
    code = f"""
import json, sys
from midiml.generate.continuation import continue_file, load_continuer
cont = load_continuer({str(model_dir.parent)!r}, "transformer")
res = continue_file({str(song)!r}, cont, {str(out)!r}, seconds=20.0, seed=3)
print(json.dumps({{"torch": "torch" in sys.modules, "res": res}}))
"""
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert report["torch"] is False  # the numpy runtime: no torch start-up
    original, written = song.read_bytes(), out.read_bytes()
    assert written[14 : len(original)] == original[14:]  # every original track chunk, bytewise
    before, after = mido.MidiFile(song), mido.MidiFile(out)
    assert len(after.tracks) == len(before.tracks) + 4  # one new track per instrument
    tempos = [(m.time, m.tempo) for m in after.tracks[0] if m.type == "set_tempo"]
    assert tempos == [(0, 500_000), (480 * 8, 666_667)]
    end_tick = 16 * 480
    found = {}
    for track in after.tracks[len(before.tracks) :]:
        now, notes, program, channels = 0, [], None, set()
        for m in track:
            now += m.time
            if m.type == "program_change":
                program = m.program
            if m.type == "note_on" and m.velocity > 0:
                notes.append(now)
                channels.add(m.channel)
        assert notes and min(notes) >= end_tick - 240  # starts where the prompt ends
        (channel,) = channels
        found["drums" if channel == 9 else program] = len(notes)
    assert set(found) == {0, 33, 48, "drums"}
    assert report["res"][0]["new_tracks"] == 4


def test_variations_are_one_batch_and_differ(model_dir, tmp_path):
    from midiml.generate.transformer_numpy import TransformerContinuer

    cont = TransformerContinuer.load(model_dir)
    import symusic

    from midiml.data.midi import read_user_file

    song = band_file(tmp_path / "band.mid")
    assert symusic.Score(str(song)).tracks
    notes = read_user_file(song).notes
    a, b = cont.continue_songs(notes, 12.0, n=2, seed=0)
    assert len(a["pitch"]) and len(b["pitch"])
    assert not (len(a["pitch"]) == len(b["pitch"]) and np.array_equal(a["pitch"], b["pitch"]))


def test_a_damaged_file_is_continued_with_the_warning(model_dir, tmp_path):
    """The token model's path says what a damaged prompt lost, like every other model's."""
    from typer.testing import CliRunner

    from midiml.cli import app

    song = band_file(tmp_path / "band.mid")
    cut = tmp_path / "cut.mid"
    cut.write_bytes(song.read_bytes()[:-40])  # the drum track cut short, a download cut off
    out = tmp_path / "out.mid"
    args = ["continue", str(cut), "-o", str(out), "--models", str(model_dir.parent)]
    res = CliRunner().invoke(app, [*args, "--model", "transformer", "--seconds", "4"])
    assert res.exit_code == 0, res.output
    assert f"warning: {cut}: " in res.output and "cut short" in res.output
    assert out.exists()
