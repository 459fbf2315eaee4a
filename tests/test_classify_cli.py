"""`midiml classify` and `midiml evaluate-blind` on mido-written files, with tiny trained models.

The models are trained here (train_all on three made-up genres that differ in register and
rhythm), so the test needs neither the pipeline's outputs nor the real data.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf
from typer.testing import CliRunner

from midiml.classify.serving import features_for, read_song
from midiml.classify.train_all import train_all
from midiml.cli import app
from midiml.io import write_json
from tests.conftest import classifier_models, write_midi

GENRES = {"low": (30, 2.0), "mid": (60, 1.0), "high": (90, 0.25)}  # base pitch, note length
runner = CliRunner()


def song(path: Path, genre: str, seed: int, composer: str | None = None) -> Path:
    rng = np.random.default_rng(seed)
    base, dur = GENRES[genre]
    if composer == "B":
        base += 3
    pitches = base + rng.integers(0, 6, 24)
    notes = [(int(p), i * dur, dur) for i, p in enumerate(pitches)]
    return write_midi(path, notes, velocity=60 + 10 * list(GENRES).index(genre))


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    """Train logistic regression on 3 genres × 8 songs (plus composers A/B in ``mid``)."""
    root = tmp_path_factory.mktemp("train")
    rows, parsed = [], []
    for genre in GENRES:
        for i in range(8):
            composer = ("A" if i % 2 else "B") if genre == "mid" else None
            path = song(root / genre / f"{i}.mid", genre, seed=i, composer=composer)
            fid = f"{genre}/{i}"
            split = "test" if i == 0 else "val" if i == 1 else "train"
            rows.append(
                {
                    "file_id": fid,
                    "genre": genre,
                    "status": "ok",
                    "composer": composer,
                    "split": split,
                }
            )
            parsed.append((fid, read_song(path)))
    files = pd.DataFrame(rows)
    table = features_for(parsed, {})
    table["genre"] = files["genre"].to_numpy()
    params = OmegaConf.create(
        {
            "seed": 0,
            "features": {},
            "tracking": {"enabled": False},
            "classifier": {
                "tasks": {"genre": {}, "composer": {"min_pieces": 4}},
                "min_train_per_class": 2,
                "cv_folds": 3,
                "scoring": "f1_macro",
                "n_jobs": 1,
                "models": classifier_models(logreg={"C": [1.0]}),
                "serve_model": "auto",
                "cnn": {"tasks": []},
            },
        }
    )
    out = root / "models"
    out.mkdir()
    manifest = train_all(
        params, files, files[["file_id", "genre", "split"]], table, None, out, log=lambda *_: None
    )
    write_json(out / "manifest.json", manifest)
    assert manifest["tasks"]["composer"]["serve"] == "logreg"
    return out


def test_classify_prints_genre_and_composer_probabilities(models, tmp_path):
    mid = song(tmp_path / "new_mid.mid", "mid", seed=99, composer="A")
    res = runner.invoke(app, ["classify", str(mid), "--models", str(models), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["genre"] == "mid"
    assert set(out["genre_probabilities"]) == set(GENRES)
    assert sum(out["genre_probabilities"].values()) == pytest.approx(1.0, abs=1e-3)
    assert set(out["composer_probabilities"]) == {"A", "B"}
    assert out["confidence"] == pytest.approx(max(out["genre_probabilities"].values()), abs=1e-3)
    assert out["novelty"] >= 0
    low = song(tmp_path / "new_low.mid", "low", seed=98)
    res = runner.invoke(app, ["classify", str(low), "--models", str(models)])
    assert res.exit_code == 0 and "low" in res.stdout.splitlines()[0]
    assert "composer" not in res.stdout  # composers only for a genre that has them


def test_classify_errors_name_the_file_and_exit_2(models, tmp_path):
    missing = tmp_path / "nope.mid"
    res = runner.invoke(app, ["classify", str(missing), "--models", str(models)])
    assert res.exit_code == 2 and "nope.mid" in res.output
    broken = tmp_path / "broken.mid"
    broken.write_bytes(b"this is not midi")
    res = runner.invoke(app, ["classify", str(broken), "--models", str(models)])
    assert res.exit_code == 2 and "broken.mid" in res.output and "unreadable" in res.output
    empty = write_midi(tmp_path / "silent.mid", [])
    res = runner.invoke(app, ["classify", str(empty), "--models", str(models)])
    assert res.exit_code == 2 and "silent.mid: no notes" in res.output
    ok = song(tmp_path / "ok.mid", "low", seed=1)
    res = runner.invoke(app, ["classify", str(ok), "--models", str(tmp_path / "none")])
    assert res.exit_code == 2 and "no trained classifiers" in res.output


def test_evaluate_blind_scores_genres_and_skips_unreadable_files(models, tmp_path):
    blind = tmp_path / "blind"
    for genre in GENRES:
        for i in range(3):
            song(blind / genre.upper() / f"{i}.mid", genre, seed=100 + i)
    (blind / "LOW" / "corrupt.mid").write_bytes(b"MThd\x00\x00garbage")
    (blind / "LOW" / "notes.txt").write_text("not a midi file, ignored")
    song(blind / "jazz" / "0.mid", "mid", seed=5)  # a genre the model does not know
    res = runner.invoke(app, ["evaluate-blind", str(blind), "--models", str(models), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["n_files"] == 10
    assert [s["file"] for s in out["skipped_files"]] == ["LOW/corrupt.mid"]
    assert "unreadable" in out["skipped_files"][0]["reason"]
    assert out["unknown_folders"] == ["jazz"]
    assert {g: r["n"] for g, r in out["per_genre"].items()} == {"low": 3, "mid": 3, "high": 3}
    assert out["overall"]["n"] == 9
    assert out["overall"]["accuracy"] == pytest.approx(
        np.mean([p["actual"] == p["predicted"] for p in out["predictions"]])
    )
    assert out["overall"]["accuracy"] >= 2 / 3 and 0 <= out["overall"]["macro_f1"] <= 1
    assert "skipped LOW/corrupt.mid" in res.stderr
    assert sum(sum(r.values()) for r in out["confusion"].values()) == 9
    assert all(w["actual"] != w["predicted"] for w in out["most_confidently_wrong"])
    text = runner.invoke(app, ["evaluate-blind", str(blind), "--models", str(models)])
    assert text.exit_code == 0 and "overall" in text.stdout and "macro-F1" in text.stdout
    assert "confusion (rows actual, columns predicted)" in text.stdout


def test_evaluate_blind_user_errors_exit_2(models, tmp_path):
    res = runner.invoke(app, ["evaluate-blind", str(tmp_path / "absent"), "--models", str(models)])
    assert res.exit_code == 2 and "absent: not a folder" in res.output
    (tmp_path / "flat").mkdir()
    song(tmp_path / "flat" / "x.mid", "low", seed=1)  # no genre sub-folders
    res = runner.invoke(app, ["evaluate-blind", str(tmp_path / "flat"), "--models", str(models)])
    assert res.exit_code == 2 and "no MIDI files in genre sub-folders" in res.output
