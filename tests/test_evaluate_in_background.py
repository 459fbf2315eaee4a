"""The evaluate stage gives the same numbers whether the CNNs' labels and the permutation
importance run in a worker process beside its other scores (``classifier.n_jobs`` >= 2) or in
its own process (``n_jobs: 1``)."""

from __future__ import annotations

import json

import pandas as pd
import yaml
from omegaconf import OmegaConf

from tests.conftest import classifier_models, run_stage
from tests.test_robust_serving import classifier_workdir, robust_params


def test_evaluate_scores_alike_with_and_without_its_worker(tmp_path):
    params = robust_params(models=classifier_models(logreg={"C": [1.0]}), n_threads=1)
    classifier_workdir(tmp_path, params)
    files_path = tmp_path / "data/interim/files.parquet"  # the blind folder copies each file
    files = pd.read_parquet(files_path)
    songs = tmp_path / "songs"
    files["path"] = [str(songs / f"{f.replace('/', '')}.mid") for f in files["file_id"]]
    files.to_parquet(files_path)
    run_stage(tmp_path, "classifier_copies.py")
    run_stage(tmp_path, "train_classifier.py", "logreg")
    run_stage(tmp_path, "select_classifiers.py")
    metrics = []
    for n_jobs in (1, 2):
        params.classifier.n_jobs = n_jobs
        (tmp_path / "params.yaml").write_text(yaml.safe_dump(OmegaConf.to_container(params)))
        run_stage(tmp_path, "evaluate_classifiers.py")
        metrics.append(json.loads((tmp_path / "reports/metrics/classifiers.json").read_text()))
    assert metrics[0]["robustness"]["importance"]["served"]  # the worker's part is there
    assert metrics[0] == metrics[1]


def test_the_notes_are_read_only_where_a_cnn_is_scored_here():
    """The evaluate stage reads the note tables (3 s) only when the genre CNN's robustness is
    not in the manifest (its stage scores it), and reuses the served models it loaded."""
    import runpy

    from midiml.classify.serving import Served

    stage = runpy.run_path("stages/evaluate_classifiers.py", run_name="not_main")
    here = stage["cnn_scored_here"]
    cnn = {"file": "genre/cnn.ckpt", "kind": "cnn"}
    assert not here({"tasks": {"genre": {"models": {"logreg": {}}}}})
    assert not here({"tasks": {"genre": {"skipped": "no songs"}}})
    assert not here({"tasks": {"genre": {"models": {"cnn": cnn | {"robustness": {"x": 1}}}}}})
    assert here({"tasks": {"genre": {"models": {"cnn": cnn}}}})
    manifest = {"tasks": {"genre": {"serve": "vote", "models": {"vote": {"file": "genre/v.pkl"}}}}}
    model = object()
    assert Served(manifest, {"genre": model}).by_file() == {"genre/v.pkl": model}
