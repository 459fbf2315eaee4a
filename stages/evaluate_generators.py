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
import pandas as pd

from midiml import tracking
from midiml.config import load_params
from midiml.evaluate import generators as ev
from midiml.evaluate import listening
from midiml.generate import losses
from midiml.generate.base import load_generator
from midiml.generate.continuation import load_continuer, plot_piano_roll, write_midi
from midiml.generate.listening_eval import (
    generate_samples,
    held_out_prompts,
    write_audio_samples,
)
from midiml.generate.train import NAMES, NEURAL
from midiml.io import atomic_dir, save_figure, write_json, write_text
from midiml.represent.windows import EventData


def _log_to_run(params, name: str, run_id: str | None, metrics: dict, files: list[Path]) -> None:
    """Attach test metrics and samples to the model's training run (a new run if it is gone)."""
    import mlflow

    if tracking.setup(params.get("tracking"), "generation") is None:
        return
    try:
        ctx = mlflow.start_run(run_id=run_id) if run_id else None
    except Exception:  # noqa: BLE001 - the run may live in another tracking store
        ctx = None
    ctx = ctx or mlflow.start_run(run_name=f"{name}-evaluation", tags=tracking.standard_tags())
    with ctx:
        mlflow.log_metrics(
            {
                k: float(v)
                for k, v in metrics.items()
                if isinstance(v, int | float) and not isinstance(v, bool)
            }
        )
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
        listening_table, listening_files = listening_section(params, results, midi_dir)
    listening_files = [Path("data/samples") / f.name for f in listening_files]
    results["targets"] = ev.targets(results, list(NEURAL))
    write_json("reports/metrics/generators.json", results)
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
    page = ev.markdown(results, timings, list(NAMES), losses.__doc__ or "")
    write_text("reports/generators.md", page + listening_markdown(results, listening_files))
    _log_to_run(params, "listening", None, flat_listening(listening_table), listening_files)


TRANSFORMER = Path("models/transformer")


def listening_section(params, results: dict, midi_dir: Path) -> tuple[dict, list[Path]]:
    """Listening metrics of every generator (+ the token Transformer) on held-out prompts."""
    names = [n for n in (*NAMES, "transformer") if (Path("models") / n / "meta.json").exists()]
    continuers = {n: load_continuer("models", n) for n in names}
    notes = pd.read_parquet("data/interim/notes.parquet")
    splits = pd.read_parquet("data/interim/splits.parquet")
    prompts = held_out_prompts(notes, splits)
    samples = generate_samples(continuers, prompts)
    table = listening.listening_table(
        [p["prompt"] for p in prompts], [p["real"] for p in prompts], samples
    )
    files = write_audio_samples(prompts, samples, midi_dir)
    results["listening"] = table
    if (TRANSFORMER / "meta.json").exists():
        from midiml.generate.transformer import token_bits

        tokens = dict(np.load("data/processed/tokens.npz"))
        cont = continuers["transformer"]
        results["transformer"] = {
            **token_bits(cont.module, cont.tokenizer, tokens),
            "conditioning": f"genre token + all previous tokens of its "
            f"{cont.module.hparams.context}-token chunk (incl. the note's bar and position)",
        }
    print(listening.markdown_table(table))
    return table, files


def flat_listening(table: dict) -> dict[str, float]:
    return {f"listening_{g}_{k}": v for g, row in table.items() for k, v in row.items()}


def listening_markdown(results: dict, files: list[Path]) -> str:
    lines = [
        "",
        "## Listening metrics (held-out prompts)",
        "",
        "Each generator continues the first 32 notes of the busiest non-drum track of test "
        "songs for 20 s (3 seeds, default sampling options: key/register/step/repeat guards "
        "on, top-p 0.95); `real` is what the song really plays next. Register distance: "
        "|median pitch of the new notes - median pitch of the prompt|. C2ST: cross-validated "
        "accuracy of a random forest telling real from generated continuations.",
        "",
        listening.markdown_table(results["listening"]),
        "",
    ]
    if t := results.get("transformer"):
        lines += [
            f"Token Transformer on the test songs' busiest tracks: pitch "
            f"{t['pitch_bits_per_note']:.3f} bits/note, all attributes "
            f"{t['all_bits_per_note']:.3f} bits/note ({t['conditioning']}).",
            "",
        ]
    audio = [f for f in files if f.suffix == ".wav"]
    if audio:
        lines += ["Audio (TimGM6mb General MIDI soundfont): "]
        lines += [f"[{f.stem}](../data/samples/{f.name})" for f in audio]
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
