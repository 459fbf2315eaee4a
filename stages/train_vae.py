"""DVC stage `train_vae`: the seed study's roll VAE and ours, trained and judged side by side.

models/generators/vae/ is ours (what `midiml continue -m vae` and `midiml interpolate` load),
models/generators/vae/study/ the study's plain-loss twin. The failure-and-cure table goes to
reports/metrics/vae.json and reports/vae.md, the figures to reports/figures/; wall times and
MLflow run ids to reports/timings/vae.json and MLflow (they change every run, so never into
the model folder or the metrics).
"""

from pathlib import Path

from midiml.config import load_params
from midiml.generate.vae_study import VARIANTS, log_results, run_study
from midiml.generate.vae_use import decode
from midiml.io import (
    atomic_dir,
    save_figure,
    split_run_dependent,
    write_json,
    write_text,
    write_timings,
)
from midiml.report.vae import loss_figure, render_page, rolls_figure
from midiml.training import cpu_threads

OUT = "models/generators/vae"
FIGURES = Path("reports/figures")


def trained_on(params) -> str:
    """Where the VAEs trained, for the page: the accelerator, and torch's threads on a CPU."""
    if str(params.trainer.accelerator) != "cpu":
        return str(params.trainer.accelerator).upper()
    n = cpu_threads(params)
    return f"CPU, {n} thread{'s' if n > 1 else ''}"


def main() -> None:
    params = load_params()
    with atomic_dir(OUT) as tmp:
        result = run_study(params, tmp)
        result["info"]["trained_on"] = trained_on(params)
        kept, timings = split_run_dependent(result["info"])
        write_json(tmp / "train.json", kept)
    table, info, ex = result["table"], result["info"], result["example"]
    metrics = {row.pop("model"): row for row in table.to_dict(orient="records")}
    write_json("reports/metrics/vae.json", metrics)
    FIGURES.mkdir(parents=True, exist_ok=True)
    decs = ex["decodings"]
    rolls = rolls_figure(
        ex["window"], ex["probs"], lambda name, p: decode(p, ex["grid"], decs[name]), ex["grid"]
    )
    save_figure(rolls, FIGURES / "vae_rolls.png")
    save_figure(loss_figure(result["histories"]), FIGURES / "vae_loss.png")
    window = int(params.model.vae.module.window)
    write_text("reports/vae.md", render_page(table, info, ex["grid"], window))
    for variant in VARIANTS:
        log_results(
            params,
            info.get(f"{variant}_run_id"),
            {f"test_{k}": v for k, v in metrics[variant].items()},
            [FIGURES / "vae_rolls.png", FIGURES / "vae_loss.png"],
        )
    print(table.round(3).to_string(index=False))
    write_timings("vae", {"trained_on": info["trained_on"], **timings})
    print({k: round(v, 2) for k, v in timings.items() if k.endswith("seconds")})


if __name__ == "__main__":
    main()
