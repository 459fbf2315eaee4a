"""DVC stage `evaluate_generators`: every generator on the same test songs.

Writes reports/metrics/generators.json (reproducible: no timings), reports/generators.md,
figures, piano rolls of sampled continuations under reports/samples/ (their MIDI under
data/samples/: a prompt is an excerpt of a dataset song, so it stays out of git), and
reports/timings/generators.json (training wall times: machine-dependent, git-ignored). Samples and
test metrics are also logged to each model's MLflow run.
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd

from midiml import tracking
from midiml.config import load_params
from midiml.evaluate import generators as ev
from midiml.evaluate import listening
from midiml.generate import heldout, losses
from midiml.generate.base import load_generator
from midiml.generate.continuation import load_continuer, saved_models, write_midi
from midiml.generate.listening_eval import generate_samples, held_out_prompts, write_audio_samples
from midiml.generate.train import generator_names, is_neural
from midiml.io import atomic_dir, save_figure, write_metrics, write_text, write_timings
from midiml.report import generators as page
from midiml.represent.windows import EventData

MODELS = Path("models/generators")


def listening_section(cfg, results: dict, midi_dir: Path) -> tuple[dict, list[Path]]:
    """Listening metrics of every saved generator (window models, the token Transformer, the
    VAE) on the same held-out prompts, with the real continuations as the reference row."""
    continuers = {n: load_continuer(MODELS, n) for n in saved_models(MODELS)}
    notes = pd.read_parquet("data/interim/notes.parquet")
    splits = pd.read_parquet("data/interim/splits.parquet")
    prompts = held_out_prompts(
        notes, splits, int(cfg.prompt_notes), float(cfg.seconds), int(cfg.n_prompts)
    )
    samples = generate_samples(continuers, prompts, float(cfg.seconds), int(cfg.seeds))
    table = listening.listening_table(
        [p["prompt"] for p in prompts], [p["real"] for p in prompts], samples
    )
    files = write_audio_samples(prompts, samples, midi_dir)
    results["listening"] = table
    token_models = [c for c in continuers.values() if hasattr(c, "token_bits")]
    if token_models:  # the Transformer's own bits per note on the test songs' tokens
        tokens = dict(np.load("data/processed/tokens.npz"))
        results["transformer"] = token_models[0].token_bits(tokens)
    print(page.listening_table_md(table))
    return table, files


def main() -> None:
    params = load_params()
    sampling = params.model.sampling
    names = generator_names(params)
    neural = [n for n in names if is_neural(params.model.generators[n])]
    data = EventData.load("data/processed/windows.npz")
    reference = ev.reference_values(heldout.test_songs(data))
    _, real, _ = heldout.prompt_segments(
        data, int(sampling.n_prompts), int(sampling.prompt_len), int(sampling.n_new)
    )
    results: dict = {"real": ev.real_metrics(real, reference, len(data.songs("test")))}
    timings, histories = {}, {}
    with atomic_dir("reports/samples") as samples_dir, atomic_dir("data/samples") as midi_dir:
        for name in names:
            model_dir = MODELS / name
            gen = load_generator(model_dir)
            train = json.loads((model_dir / "train.json").read_text())
            prompts, samples = heldout.sample_continuations(gen, data, sampling)
            results[name] = {
                **ev.prediction_metrics(*heldout.test_predictions(gen, data)),
                **ev.sample_metrics(samples, reference),
                "epochs": train["epochs"],
            }
            timings[name] = {
                "train_seconds": round(train["train_seconds"], 2),
                "epochs": train["epochs"],
            }
            if name in neural:
                histories[name] = train["history"]
            files = []
            for i in range(min(int(sampling.n_saved), len(samples))):
                mid = midi_dir / f"{name}_{i}.mid"
                write_midi(np.concatenate([prompts[i], samples[i]]), mid)
                png = samples_dir / f"{name}_{i}.png"
                fig = page.plot_piano_roll(prompts[i], samples[i], f"{name}: continuation {i}")
                save_figure(fig, png)
                files += [mid, png]
            tracking.log_evaluation(
                params, "generation", name, train.get("run_id"), results[name], files
            )
            shown = ("test_bits_per_note", "test_top1", "sample_repeat_rate", "sample_oa_mean")
            print(name, {k: results[name][k] for k in shown})
        table, listening_files = listening_section(params.model.listening, results, midi_dir)
    listening_files = [Path("data/samples") / f.name for f in listening_files]
    tracking.log_evaluation(params, "generation", "listening", None, listening.flat(table), [])
    ablation_file = Path("models/ffnn_ablation/results.json")
    if ablation_file.exists():
        results["ffnn_ablation"] = json.loads(ablation_file.read_text())
        ab_t = Path("models/ffnn_ablation/timings.json")
        if ab_t.exists():
            timings["ffnn_ablation"] = json.loads(ab_t.read_text())
    results["targets"] = ev.targets(results, neural)
    write_metrics("reports/metrics/generators.json", results)
    write_timings("generators", {"device": str(params.trainer.accelerator), "models": timings})
    save_figure(page.plot_bits(results, names), "reports/figures/generators_bits.png")
    save_figure(page.plot_curves(histories), "reports/figures/generators_val_curves.png")
    if "ffnn_ablation" in results:
        save_figure(
            page.plot_ablation(results["ffnn_ablation"], results["real"]["sample_repeat_rate"]),
            "reports/figures/generators_ablation.png",
        )
    write_text("reports/generators.md", page.markdown(results, names, losses.__doc__ or ""))


if __name__ == "__main__":
    main()
