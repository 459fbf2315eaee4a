"""Adding a generator = one module + one config node: a dummy one, registered purely through
config, goes through the real training stage, the real evaluation stage and `midiml continue`."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import yaml
from omegaconf import OmegaConf
from typer.testing import CliRunner

from midiml.cli import app
from tests.conftest import REPO, tiny_params, write_midi
from tests.test_generators import scale_data, scale_tables


def run_stage(workdir, *args: str) -> None:
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'src'}"}
    res = subprocess.run(
        [sys.executable, str(REPO / "stages" / args[0]), *args[1:]],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-3000:]


def test_a_generator_added_through_config_trains_evaluates_and_continues(tmp_path):
    params = tiny_params(model={"sampling": {"n_prompts": 2, "prompt_len": 8, "n_new": 8}})
    dummy = {"module": {"_target_": "tests.dummy_generator.RepeatLastGenerator", "stay": 0.9}}
    params.model.generators = {"markov": params.model.generators.markov, "dummy": dummy}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(OmegaConf.to_container(params)))
    (tmp_path / "data" / "processed").mkdir(parents=True)
    (tmp_path / "data" / "interim").mkdir(parents=True)
    scale_data(n_songs=6, length=80).save(tmp_path / "data" / "processed" / "windows.npz")
    notes, splits = scale_tables(n_songs=6, length=80)
    notes.to_parquet(tmp_path / "data" / "interim" / "notes.parquet")
    splits.to_parquet(tmp_path / "data" / "interim" / "splits.parquet")

    for name in ("markov", "dummy"):
        run_stage(tmp_path, "train_generator.py", name)
    run_stage(tmp_path, "evaluate_generators.py")

    metrics = json.loads((tmp_path / "reports" / "metrics" / "generators.json").read_text())
    assert {"markov", "dummy", "real"} <= set(metrics)
    assert metrics["dummy"]["test_bits_per_note"] > 0
    page = (tmp_path / "reports" / "generators.md").read_text()
    assert "| dummy |" in page
    rows = metrics["continuation"]["table"]  # judged against the real continuations too
    assert {"dummy/guards", "dummy/free", "loop", "next_section", "random"} <= set(rows)
    assert (tmp_path / "models" / "default_generator.json").exists()

    song = write_midi(tmp_path / "tune.mid", [(60 + i % 5, i * 0.5, 0.5) for i in range(6)])
    out = tmp_path / "out.mid"
    res = CliRunner().invoke(
        app,
        [
            "continue",
            str(song),
            "--model",
            "dummy",
            "--seconds",
            "2",
            "-o",
            str(out),
            "--models-dir",
            str(tmp_path / "models" / "generators"),
        ],
    )
    assert res.exit_code == 0, res.output
    assert out.exists()
