"""Wall times live in their own git-ignored files: a rerun leaves tracked reports unchanged."""

from __future__ import annotations

import json
import subprocess

from tests.conftest import REPO, run_stage, tiny_params
from tests.test_generators import scale_workdir

TRACKED = ("reports/generators.md", "reports/metrics/generators.json")


def test_timing_files_are_git_ignored_and_no_dvc_output():
    res = subprocess.run(
        ["git", "check-ignore", "-q", "reports/timings/generators.json"], cwd=REPO, check=False
    )
    assert res.returncode == 0
    pipeline = (REPO / "dvc.yaml").read_text()
    assert "reports/timings" not in pipeline and "generator_timings" not in pipeline


def test_generator_evaluation_rerun_leaves_tracked_reports_byte_identical(tmp_path):
    """Train and evaluate twice: the training times differ, the tracked page and metrics
    do not; the times are in reports/timings/generators.json."""
    params = tiny_params(model={"sampling": {"n_prompts": 2, "prompt_len": 8, "n_new": 8}})
    params.model.generators = {"markov": params.model.generators.markov}
    scale_workdir(tmp_path, params)

    runs = []
    for _ in range(2):
        run_stage(tmp_path, "train_generator.py", "markov")
        run_stage(tmp_path, "evaluate_generators.py")
        runs.append({p: (tmp_path / p).read_bytes() for p in TRACKED})
        timings = json.loads((tmp_path / "reports" / "timings" / "generators.json").read_text())
        runs[-1]["seconds"] = timings["models"]["markov"]["train_seconds"]
    assert all(runs[0][p] == runs[1][p] for p in TRACKED)
    assert b"## Training wall time" not in runs[0]["reports/generators.md"]
    assert not (tmp_path / "reports" / "metrics" / "generator_timings.json").exists()


def test_generator_training_twice_leaves_the_model_folder_byte_identical(tmp_path):
    """A neural generator (Lightning checkpoint) and a direct one trained twice on the same
    params: every file of the DVC output is byte-identical (no wall time, MLflow run id or
    temporary checkpoint folder in it); the times are in reports/timings/generator_<name>.json."""
    params = tiny_params()
    scale_workdir(tmp_path, params)
    for name in ("ffnn", "markov"):
        folder = tmp_path / "models" / "generators" / name
        runs = []
        for _ in range(2):
            run_stage(tmp_path, "train_generator.py", name)
            runs.append({p.name: p.read_bytes() for p in sorted(folder.iterdir())})
        assert runs[0] == runs[1], name
        train = json.loads(runs[0]["train.json"])
        assert "train_seconds" not in train and "run_id" not in train
        timings = tmp_path / "reports" / "timings" / f"generator_{name}.json"
        assert "train_seconds" in json.loads(timings.read_text())
