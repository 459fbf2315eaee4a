"""DVC stage `evaluate_generators`: every generator on the same test songs.

Writes reports/metrics/generators.json (reproducible: no timings), reports/generators.md,
figures, piano rolls of sampled continuations under reports/samples/ (their MIDI under
data/samples/: a prompt is an excerpt of a dataset song, so it stays out of git), and
reports/metrics/generator_timings.json (training wall times: machine-dependent). Samples and
test metrics are also logged to each model's MLflow run.
"""

import json
from pathlib import Path

import numpy as np

from midiml import tracking
from midiml.config import load_params
from midiml.evaluate import generators as ev
from midiml.generate import losses
from midiml.generate.base import load_generator
from midiml.generate.continuation import plot_piano_roll, write_midi
from midiml.generate.train import NAMES, NEURAL
from midiml.io import atomic_dir, save_figure, write_json, write_metrics, write_text
from midiml.represent.windows import EventData


def _log_to_run(params, name: str, run_id: str | None, metrics: dict, files: list[Path]) -> None:
    """Test metrics and samples as an evaluation run nested under the model's training run."""
    import mlflow

    with tracking.evaluation_run(params, "generation", run_id, f"{name}/evaluation") as run:
        if run is None:
            return
        tracking.log_metrics(metrics)
        for f in files:
            mlflow.log_artifact(str(f), artifact_path="samples")


def main() -> None:
    params = load_params()
    sampling = params.model.sampling
    data = EventData.load("data/processed/windows.npz")
    reference = ev.reference_values(data)
    results: dict = {"real": ev.real_metrics(data, sampling, reference)}
    timings, histories = {}, {}
    with atomic_dir("reports/samples") as samples_dir, atomic_dir("data/samples") as midi_dir:
        for name in NAMES:
            model_dir = Path("models") / name
            gen = load_generator(model_dir)
            train = json.loads((model_dir / "train.json").read_text())
            stats, prompts, samples = ev.sample_metrics(gen, data, sampling, reference)
            results[name] = {**ev.prediction_metrics(gen, data), **stats, "epochs": train["epochs"]}
            timings[name] = {
                "train_seconds": round(train["train_seconds"], 2),
                "epochs": train["epochs"],
            }
            if name in NEURAL:
                histories[name] = train["history"]
            files = []
            for i in range(min(int(sampling.n_saved), len(samples))):
                mid = midi_dir / f"{name}_{i}.mid"
                write_midi(np.concatenate([prompts[i], samples[i]]), mid)
                png = samples_dir / f"{name}_{i}.png"
                fig = plot_piano_roll(prompts[i], samples[i], f"{name}: continuation {i}")
                save_figure(fig, png)
                files += [mid, png]
            _log_to_run(params, name, train.get("run_id"), results[name], files)
            print(
                name,
                {
                    k: results[name][k]
                    for k in (
                        "test_bits_per_note",
                        "test_top1",
                        "sample_repeat_rate",
                        "sample_oa_mean",
                    )
                },
            )
    ablation_file = Path("models/ffnn_ablation/results.json")
    if ablation_file.exists():
        results["ffnn_ablation"] = json.loads(ablation_file.read_text())
        ab_t = Path("models/ffnn_ablation/timings.json")
        if ab_t.exists():
            timings["ffnn_ablation"] = json.loads(ab_t.read_text())
    results["targets"] = ev.targets(results, list(NEURAL))
    write_metrics("reports/metrics/generators.json", results)
    write_json(
        "reports/metrics/generator_timings.json",
        {"device": str(params.trainer.accelerator), "models": timings},
    )
    save_figure(ev.plot_bits(results, list(NAMES)), "reports/figures/generators_bits.png")
    save_figure(ev.plot_curves(histories), "reports/figures/generators_val_curves.png")
    if "ffnn_ablation" in results:
        save_figure(
            ev.plot_ablation(results["ffnn_ablation"], results["real"]["sample_repeat_rate"]),
            "reports/figures/generators_ablation.png",
        )
    write_text(
        "reports/generators.md", ev.markdown(results, timings, list(NAMES), losses.__doc__ or "")
    )


if __name__ == "__main__":
    main()
