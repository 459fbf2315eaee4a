"""Adding a generator = one module + one config node: a dummy one, registered purely through
config, goes through the real training stage, the real evaluation stage and `midiml continue`."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from midiml.cli import app
from tests.conftest import run_stage, tiny_params, write_midi
from tests.test_generators import scale_workdir


def test_a_generator_added_through_config_trains_evaluates_and_continues(tmp_path):
    params = tiny_params(model={"sampling": {"n_prompts": 2, "prompt_len": 8, "n_new": 8}})
    dummy = {"module": {"_target_": "tests.dummy_generator.RepeatLastGenerator", "stay": 0.9}}
    params.model.generators = {"markov": params.model.generators.markov, "dummy": dummy}
    scale_workdir(tmp_path, params)

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
            "--models",
            str(tmp_path / "models" / "generators"),
        ],
    )
    assert res.exit_code == 0, res.output
    assert out.exists()
