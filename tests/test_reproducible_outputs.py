"""The same inputs and params give the same bytes: DVC outputs rebuilt on one machine hash
as before, so `dvc repro -f` leaves dvc.lock's output hashes unchanged.

The feature table is built twice by the real stage, in two processes, from a small profile
(music21 chorales written as MIDI and parsed by the project's reader); the generator
folders are covered in tests/test_timings.py.
"""

from __future__ import annotations

import pandas as pd
import yaml
from omegaconf import OmegaConf

from midiml.data.midi import parse_midi
from tests.conftest import run_stage, tiny_params

WORKS = ("bach/bwv66.6", "bach/bwv269", "bach/bwv347", "bach/bwv153.1")
GENRES = ("a", "b")


def _small_profile(workdir) -> None:
    """params.yaml and data/interim/{notes,files}.parquet of four chorales, two genres."""
    from music21 import corpus

    (workdir / "params.yaml").write_text(yaml.safe_dump(OmegaConf.to_container(tiny_params())))
    interim = workdir / "data" / "interim"
    interim.mkdir(parents=True)
    notes, files = [], []
    for i, work in enumerate(WORKS):
        path = workdir / f"{i}.mid"
        corpus.parse(work).write("midi", fp=str(path))
        genre = GENRES[i % 2]
        parsed = parse_midi(path, f"{genre}/{i}")
        notes.append(parsed.notes.assign(genre=genre))
        files.append({"file_id": f"{genre}/{i}", "genre": genre, "status": "ok", **parsed.info})
    pd.concat(notes, ignore_index=True).to_parquet(interim / "notes.parquet", index=False)
    pd.DataFrame(files).to_parquet(interim / "files.parquet", index=False)


def test_features_stage_twice_gives_identical_bytes(tmp_path):
    _small_profile(tmp_path)
    out = tmp_path / "data" / "features" / "features.parquet"
    builds = []
    for _ in range(2):
        run_stage(tmp_path, "features.py")
        builds.append(out.read_bytes())
        out.unlink()
    assert builds[0] == builds[1]
    assert len(pd.read_parquet(tmp_path / "data" / "interim" / "files.parquet")) == len(WORKS)
