"""DVC stage `ffnn_ablation`: the seed study's collapse and its cure, measured.

Trains the ffnn with its loss ``model.loss`` but lambda_rep = 0, and with lambda_rep > 0 for
each alpha in ``model.ablation.alphas``, and records each variant's sample repeat rate
(sampled and greedy) and test bits per note -> models/ffnn_ablation/results.json (the
evaluation stage reports it).
"""

from omegaconf import OmegaConf

from midiml.config import load_params
from midiml.evaluate.generators import prediction_metrics, reference_values, sample_metrics
from midiml.generate import heldout
from midiml.generate.base import load_generator
from midiml.generate.train import train_generator
from midiml.io import atomic_dir, write_json, write_timings
from midiml.represent.windows import EventData

OUT = "models/ffnn_ablation"


def main() -> None:
    params = load_params()
    ab = params.model.ablation
    data = EventData.load("data/processed/windows.npz")
    spec = OmegaConf.create(OmegaConf.to_container(params.model.generators.ffnn, resolve=True))
    spec.max_epochs = int(ab.max_epochs)
    spec.datamodule.windows_per_epoch = ab.windows_per_epoch
    base = OmegaConf.to_container(params.model.loss, resolve=True)
    variants = [("lambda_rep=0", {"alpha": 1.0, "lambda_rep": 0.0})]
    variants += [
        (f"alpha={float(a):g}", {"alpha": float(a), "lambda_rep": float(ab.lambda_rep)})
        for a in ab.alphas
    ]
    reference = reference_values(heldout.test_songs(data))
    sampling = params.model.sampling
    results, timings = {}, {}
    with atomic_dir(OUT) as tmp:
        for label, loss in variants:
            loss = {**base, **loss}
            spec.module.loss = loss
            model_dir = tmp / label.replace("=", "_")
            info = train_generator(
                "ffnn",
                spec,
                params,
                data,
                model_dir,
                run_name=f"ffnn-ablation-{label}",
                progress_bar=False,
            )
            gen = load_generator(model_dir)
            _, sampled = heldout.sample_continuations(gen, data, sampling)
            _, greedy = heldout.sample_continuations(gen, data, sampling, temperature=0)
            sampled_stats = sample_metrics(sampled, reference)
            results[label] = {
                **loss,
                **prediction_metrics(*heldout.test_predictions(gen, data)),
                "sample_repeat_rate": sampled_stats["sample_repeat_rate"],
                "greedy_repeat_rate": sample_metrics(greedy, reference)["sample_repeat_rate"],
                "sample_oa_mean": sampled_stats["sample_oa_mean"],
            }
            timings[label] = round(info["train_seconds"], 2)
            print(label, results[label])
        write_json(tmp / "results.json", results)
    write_timings("ffnn_ablation", timings)  # wall times: not in the DVC output


if __name__ == "__main__":
    main()
