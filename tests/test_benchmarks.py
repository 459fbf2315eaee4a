"""The training benchmark (`make bench-train`) trains with the stages' own call."""

from __future__ import annotations

from midiml.io import write_json
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


def test_cnn_held_out_source_compares_with_the_served_models_held_out_numbers(tmp_path):
    """The CNN's held-out accuracy is printed beside the served model's, read from the
    evaluate stage's metrics; before the pipeline has run there is nothing to compare."""
    tool = load_script("benchmarks/cnn_held_out_source.py")
    metrics = tmp_path / "classifiers.json"
    held = {"classical_a": 0.9, "videogame_b": 0.8}
    models = {"vote": {"held_out_source_train": held}, "cnn": {}}
    write_json(metrics, {"tasks": {"genre": {"serve": "vote", "models": models}}})
    assert tool.served_held_out(metrics) == ("vote", held)
    assert tool.served_held_out(tmp_path / "absent.json") == (None, {})
