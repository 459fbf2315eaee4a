"""Two trainings of a neural generator on the same machine give identical metrics.

Training is seeded (``params.seed``, DataLoader workers included), runs with
``Trainer(deterministic=True)`` and a fixed number of torch threads, so `dvc repro --force`
of a neural stage reproduces its metrics bit for bit on one machine.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from midiml.generate.base import load_generator
from midiml.generate.train import train_generator
from midiml.io import METRIC_DECIMALS, write_metrics
from tests.conftest import tiny_params
from tests.test_generators import scale_data


@pytest.mark.parametrize("name", ["ffnn", "note_lstm"])
def test_two_trainings_give_identical_metrics(tmp_path, name):
    data = scale_data()
    x, _ = data.windows("test")
    runs = []
    for attempt in range(2):
        torch.manual_seed(1000 + attempt)  # whatever ran before must not matter
        params = tiny_params(trainer={"max_epochs": 2}, data={"max_epochs": 2})
        spec = params.model.generators[name]
        spec.max_epochs = 2
        out = tmp_path / f"{name}{attempt}"
        info = train_generator(name, spec, params, data, out, progress_bar=False)
        probs = load_generator(out).next_pitch_proba(x[:16])
        runs.append(([r for r in info["history"] if "val_loss" in r], probs))
    (h1, p1), (h2, p2) = runs
    assert h1 and h1 == h2
    np.testing.assert_array_equal(p1, p2)


def test_metrics_files_are_rounded_to_the_stated_precision(tmp_path):
    path = tmp_path / "m.json"
    write_metrics(path, {"ffnn": {"bits_per_note": 4.4561234, "n": 7, "ok": True}, "x": [0.12345]})
    text = path.read_text()
    assert f"{round(4.4561234, METRIC_DECIMALS)}" in text and "4.4561234" not in text
    assert '"n": 7' in text and '"ok": true' in text and "0.123" in text
