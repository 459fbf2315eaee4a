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


def _folder_bytes(folder) -> dict[str, bytes]:
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    return {str(p.relative_to(folder)): p.read_bytes() for p in files}


def test_classifier_fits_and_selection_twice_give_identical_bytes(tmp_path):
    """Two models (one of them random: a forest), their vote and the served choice, trained
    and selected twice with MLflow on: the fits and models/classifiers/ are byte-identical;
    each run's MLflow run ids are in reports/timings/, and differ."""
    from midiml.io import TIMINGS_DIR
    from tests.conftest import classifier_models
    from tests.test_robust_serving import classifier_workdir, robust_params

    models = classifier_models(logreg={"C": [1.0]}, random_forest={"n_estimators": [20]})
    params = robust_params(models=models, vote=["logreg", "random_forest"], n_threads=1)
    params.tracking = {  # on: run ids are created, and must stay out of the outputs
        "enabled": True,
        "tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}",
        "artifact_location": str(tmp_path / "mlartifacts"),
        "experiment_prefix": "midiml",
    }
    classifier_workdir(tmp_path, params)
    run_stage(tmp_path, "classifier_copies.py")

    builds, run_ids = [], []
    for _ in range(2):
        for kind in ("logreg", "random_forest"):
            run_stage(tmp_path, "train_classifier.py", kind)
        run_stage(tmp_path, "select_classifiers.py")
        builds.append(_folder_bytes(tmp_path / "models"))
        run_ids.append((tmp_path / TIMINGS_DIR / "classifier_fits_logreg.json").read_text())
    assert builds[0].keys() == builds[1].keys()
    assert [p for p in builds[0] if builds[0][p] != builds[1][p]] == []
    assert '"run_id"' in run_ids[0] and run_ids[0] != run_ids[1]
    assert b"run_id" not in builds[0]["classifiers/manifest.json"]
