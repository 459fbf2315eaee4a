"""`midiml continue`: a file the pipeline never saw becomes a longer, valid MIDI file."""

from __future__ import annotations

import mido
import numpy as np
import pytest
from typer.testing import CliRunner

from midiml.cli import app
from midiml.generate.train import train_generator
from tests.conftest import tiny_params, write_midi
from tests.test_generators import scale_data

runner = CliRunner()


@pytest.fixture
def models_dir(tmp_path):
    """A tiny Markov model trained here, saved the way the training stage saves it."""
    data = scale_data()
    root = tmp_path / "models"
    params = tiny_params()
    train_generator("markov", params.model.generators.markov, params, data, root / "markov")
    return root


def _song(tmp_path, n: int = 24):
    notes = [(60 + (i * 2) % 12, i * 0.5, 0.5) for i in range(n)]
    return write_midi(tmp_path / "mine.mid", notes)


def test_continue_writes_a_longer_playable_file(tmp_path, models_dir):
    src = _song(tmp_path)
    out = tmp_path / "out.mid"
    res = runner.invoke(
        app,
        [
            "continue",
            str(src),
            "--model",
            "markov",
            "--seconds",
            "6",
            "-o",
            str(out),
            "--temperature",
            "0.8",
            "--seed",
            "3",
            "--top-k",
            "5",
            "--models",
            str(models_dir),
        ],
    )
    assert res.exit_code == 0, res.output
    original, longer = mido.MidiFile(src), mido.MidiFile(out)
    assert longer.length == pytest.approx(original.length + 6, abs=0.6)
    n_on = sum(1 for m in longer if m.type == "note_on" and m.velocity > 0)
    assert n_on > 24
    again = tmp_path / "again.mid"
    runner.invoke(
        app,
        [
            "continue",
            str(src),
            "--model",
            "markov",
            "--seconds",
            "6",
            "-o",
            str(again),
            "--temperature",
            "0.8",
            "--seed",
            "3",
            "--top-k",
            "5",
            "--models",
            str(models_dir),
        ],
    )
    assert again.read_bytes() == out.read_bytes()  # same seed, same file


def test_missing_model_is_a_clear_error(tmp_path, models_dir):
    res = runner.invoke(
        app,
        [
            "continue",
            str(_song(tmp_path)),
            "--model",
            "ffnn",
            "--models",
            str(models_dir),
            "-o",
            str(tmp_path / "o.mid"),
        ],
    )
    assert res.exit_code == 2
    assert "no trained model 'ffnn'" in res.output and "markov" in res.output


def test_models_is_one_name_for_both_commands(tmp_path, models_dir):
    """`continue` takes `--models` like `classify`; the older `--models-dir` still works."""
    for flag in ("--models", "--models-dir"):
        out = tmp_path / f"{flag.strip('-')}.mid"
        res = runner.invoke(
            app, ["continue", str(_song(tmp_path)), flag, str(models_dir), "-o", str(out)]
        )
        assert res.exit_code == 0, res.output
        assert out.exists()


def test_unreadable_file_is_a_clear_error(tmp_path, models_dir):
    bad = tmp_path / "bad.mid"
    bad.write_bytes(b"not a midi file at all")
    reasons = {"bad.mid": "unreadable MIDI", "missing.mid": "no such file"}  # ingest's rules
    for path in (bad, tmp_path / "missing.mid"):
        res = runner.invoke(
            app,
            [
                "continue",
                str(path),
                "--model",
                "markov",
                "--models",
                str(models_dir),
                "-o",
                str(tmp_path / "o.mid"),
            ],
        )
        assert res.exit_code == 2
        assert reasons[path.name] in res.output and path.name in res.output
        assert len(res.output.strip().splitlines()) == 1
    assert not (tmp_path / "o.mid").exists()


def _continue(models_dir, src, out, *extra):
    args = ["continue", str(src), "--models", str(models_dir), "-o", str(out), *extra]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    return res


@pytest.mark.parametrize("n_notes", [1, 8])
def test_short_prompts_are_continued(tmp_path, models_dir, n_notes):
    notes = [(60 + (0, 2, 4, 5, 7, 5, 4, 2)[i % 8], i * 0.5, 0.5) for i in range(n_notes)]
    src = write_midi(tmp_path / "short.mid", notes)
    out = tmp_path / "o.mid"
    res = _continue(models_dir, src, out, "--seconds", "4")
    assert f"{n_notes} prompt notes" in res.output
    new = mido.MidiFile(out).tracks[-1]
    pitches = [m.note for m in new if m.type == "note_on" and m.velocity > 0]
    assert len(pitches) >= 4
    assert all(p % 12 in (0, 2, 4, 5, 7, 9, 11) for p in pitches)  # C major prompt, guards on


def _four_track_song(path):
    """Melody, chords, bass and drums with a tempo change and a 3/4 time signature."""
    mid = mido.MidiFile(type=1, ticks_per_beat=96)
    meta = mido.MidiTrack(
        [
            mido.MetaMessage("set_tempo", tempo=600_000, time=0),
            mido.MetaMessage("time_signature", numerator=3, denominator=4, time=0),
            mido.MetaMessage("set_tempo", tempo=400_000, time=96 * 6),
        ]
    )
    mid.tracks.append(meta)
    parts = [(0, 0, [72, 74, 76, 77, 79, 77, 76, 74, 72, 71, 72, 74]), (1, 24, [60, 64, 67] * 4)]
    parts += [(2, 32, [36, 43] * 6), (9, 0, [36, 42, 38] * 4)]
    for channel, program, pitches in parts:
        track = mido.MidiTrack()
        if channel != 9:
            track.append(mido.Message("program_change", channel=channel, program=program, time=0))
        for p in pitches:
            track.append(mido.Message("note_on", channel=channel, note=p, velocity=70, time=0))
            track.append(mido.Message("note_off", channel=channel, note=p, time=96))
        mid.tracks.append(track)
    mid.save(path)
    return path


def test_output_keeps_every_track_and_the_tempo_map(tmp_path, models_dir):
    src = _four_track_song(tmp_path / "band.mid")
    before = src.read_bytes()
    out = tmp_path / "o.mid"
    _continue(models_dir, src, out, "--bars", "2", "--variations", "2")
    assert src.read_bytes() == before  # the user's file is untouched
    original = mido.MidiFile(src)
    for path in (tmp_path / "o_1.mid", tmp_path / "o_2.mid"):
        result = mido.MidiFile(path)
        assert len(result.tracks) == len(original.tracks) + 1
        for a, b in zip(original.tracks, result.tracks, strict=False):
            assert [m.dict() for m in a] == [m.dict() for m in b]
        new = result.tracks[-1]
        programs = [m.program for m in new if m.type == "program_change"]
        assert programs == [0]  # the busiest non-drum track is the melody, piano
        channels = {m.channel for m in new if m.type == "note_on"}
        assert 9 not in channels
        # 2 bars of 3/4 at the final tempo (150 qpm) = 2.4 s after the prompt's 12 beats
        assert result.length == pytest.approx(original.length + 2.4, abs=0.5)


def test_wav_is_written_and_not_silent(tmp_path, models_dir):
    import wave

    import numpy as np

    src = write_midi(tmp_path / "s.mid", [(67, i, 1) for i in range(3)])
    _continue(models_dir, src, tmp_path / "o.mid", "--seconds", "2", "--wav")
    with wave.open(str(tmp_path / "o.wav")) as w:
        assert w.getnframes() > w.getframerate() * 2
        samples = np.frombuffer(w.readframes(w.getnframes()), np.int16)
    assert np.abs(samples).max() > 1000


def test_guarded_continuation_stays_in_key_register_and_steps(models_dir):
    """Twinkle Twinkle: the new notes keep the key, the register and the melodic steps."""
    from midiml.evaluate.listening import listening_row
    from midiml.generate.continuation import load_continuer

    tune = [60, 60, 67, 67, 69, 69, 67, 65, 65, 64, 64, 62, 62, 60]
    prompt = {
        "pitch": np.array(tune, float),
        "velocity": np.full(14, 80.0),
        "onset_s": np.arange(14) * 0.5,
        "duration_s": np.full(14, 0.5),
    }
    continuer = load_continuer(models_dir, "markov")
    for seed in range(3):
        new = continuer.continue_notes(prompt, 20.0, seed=seed)
        assert new["onset_s"].min() >= 7.0 - 1e-9  # after the prompt's last note ends
        row = listening_row(np.array(tune), new["pitch"])
        assert row["key_consistency"] >= 0.9
        assert row["register_distance"] <= 4
        assert row["step_ratio"] <= 1.5
