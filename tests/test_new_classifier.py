"""Adding a classifier kind = one module + one config entry: a dummy kind
(``tests/dummy_classifier.py``), registered purely as ``classifier.models.centroid``, goes
through the real stages (its own ``train_classifier@centroid``, the selection, which votes
with it, and serving), and ``dvc.yaml`` makes one training stage per configured kind."""

from __future__ import annotations

import json

import yaml

from tests.conftest import REPO, classifier_models, run_stage
from tests.test_robust_serving import classifier_workdir, robust_params

CENTROID = {
    "estimator": {"_target_": "tests.dummy_classifier.CentroidClassifier"},
    "grid": {"temperature": [0.5, 2.0]},
}


def test_a_classifier_kind_added_through_config_is_trained_voted_and_served(tmp_path):
    models = classifier_models(logreg={"C": [1.0]}) | {"centroid": CENTROID}
    params = robust_params(
        models=models, vote=["logreg", "centroid"], serve_model="vote", n_threads=1
    )
    classifier_workdir(tmp_path, params)

    run_stage(tmp_path, "classifier_copies.py")
    for kind in ("logreg", "centroid"):
        assert f"train_classifier@{kind}" in run_stage(tmp_path, "train_classifier.py", kind)
    run_stage(tmp_path, "select_classifiers.py")

    manifest = json.loads((tmp_path / "models/classifiers/manifest.json").read_text())
    genre = manifest["tasks"]["genre"]
    assert genre["models"]["centroid"]["best_params"]["temperature"] in (0.5, 2.0)
    assert "held_out_source" in genre["models"]["centroid"]  # its own held-out refits
    assert genre["models"]["vote"]["best_params"]["members"] == ["logreg", "centroid"]
    assert genre["serve"] == "vote"
    from midiml.classify.serving import classify_files, load_served

    served = load_served(tmp_path / "models" / "classifiers")
    songs = sorted((tmp_path / "songs").glob("*.mid"))[:2]
    assert all(r["genre_model"] == "vote" for r in classify_files(songs, served))


def test_dvc_makes_one_training_stage_per_configured_kind():
    """``train_classifier`` is a foreach over ``classifier.models``, each stage on its own
    kind's params only: a new entry gets a stage, and a change to one kind reruns that one."""
    stage = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]["train_classifier"]
    assert stage["foreach"] == "${classifier.models}"
    assert stage["do"]["cmd"].endswith("stages/train_classifier.py ${key}")
    assert "classifier.models.${key}" in stage["do"]["params"]
    assert not {"classifier", "classifier.models"} & set(stage["do"]["params"])
    assert stage["do"]["outs"] == ["models/classifier_fits/${key}"]
