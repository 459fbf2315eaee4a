"""The training benchmark (`make bench-train`) trains with the stages' own call."""

from __future__ import annotations

from midiml.represent.windows import build_event_data
from tests.conftest import load_script
from tests.test_generators import scale_tables


def _bench():
    return load_script("benchmarks/train_generators.py")


def test_bench_train_times_each_model(tmp_path):
    windows = tmp_path / "windows.npz"
    build_event_data(*scale_tables(), n_in=16, n_out=1).save(windows)  # the models' context
    out = _bench().run("cpu", ["ffnn"], windows, ("data.max_epochs=1",))
    entry = out["models"]["ffnn"]
    assert entry["epochs"] == 1 and entry["train_seconds"] > 0
    assert entry["best_val_loss"] is not None and entry["best_val_loss"] > 0
