"""`midiml continue`: a file the pipeline never saw becomes a longer, valid MIDI file."""

from __future__ import annotations

import mido
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
            "--models-dir",
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
            "--models-dir",
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
            "--models-dir",
            str(models_dir),
            "-o",
            str(tmp_path / "o.mid"),
        ],
    )
    assert res.exit_code == 2
    assert "no trained model 'ffnn'" in res.output and "markov" in res.output


def test_unreadable_file_is_a_clear_error(tmp_path, models_dir):
    bad = tmp_path / "bad.mid"
    bad.write_bytes(b"not a midi file at all")
    for path in (bad, tmp_path / "missing.mid"):
        res = runner.invoke(
            app,
            [
                "continue",
                str(path),
                "--model",
                "markov",
                "--models-dir",
                str(models_dir),
                "-o",
                str(tmp_path / "o.mid"),
            ],
        )
        assert res.exit_code == 2
        assert "cannot read" in res.output and path.name in res.output
    assert not (tmp_path / "o.mid").exists()


def test_too_few_notes_is_a_clear_error(tmp_path, models_dir):
    short = write_midi(tmp_path / "short.mid", [(60, 0, 1)])
    res = runner.invoke(
        app,
        [
            "continue",
            str(short),
            "--model",
            "markov",
            "--models-dir",
            str(models_dir),
            "-o",
            str(tmp_path / "o.mid"),
        ],
    )
    assert res.exit_code == 2
    assert "needs at least 2" in res.output
