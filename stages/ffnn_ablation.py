"""DVC stage `ffnn_ablation`: the seed's collapse and its cure, measured.

Trains the ffnn with lambda_rep = 0 and with lambda_rep > 0 for each alpha in
``model.ablation.alphas`` and records each variant's sample repeat rate (sampled and greedy)
and test bits per note -> models/ffnn_ablation/results.json (the evaluation stage reports it).
"""

from omegaconf import OmegaConf

from midiml.config import load_params
from midiml.evaluate.generators import prediction_metrics, reference_values, sample_metrics
from midiml.generate.base import load_generator
from midiml.generate.train import train_generator
from midiml.io import atomic_dir, write_json
from midiml.represent.windows import EventData

OUT = "models/ffnn_ablation"


def main() -> None:
    params = load_params()
    ab = params.model.ablation
    data = EventData.load("data/processed/windows.npz")
    cfg = OmegaConf.to_container(params.model.ffnn, resolve=True)
    cfg.update(max_epochs=int(ab.max_epochs), windows_per_epoch=ab.windows_per_epoch)
    variants = [("lambda_rep=0", {"alpha": 1.0, "lambda_rep": 0.0})]
    variants += [
        (f"alpha={float(a):g}", {"alpha": float(a), "lambda_rep": float(ab.lambda_rep)})
        for a in ab.alphas
    ]
    reference = reference_values(data)
    results, timings = {}, {}
    with atomic_dir(OUT) as tmp:
        for label, loss in variants:
            loss = {**loss, "lambda_sim": 0.0, "rep_context": 1}
            model_dir = tmp / label.replace("=", "_")
            info = train_generator(
                "ffnn",
                params,
                data,
                model_dir,
                run_name=f"ffnn-ablation-{label}",
                cfg=cfg,
                loss=loss,
                progress_bar=False,
            )
            gen = load_generator(model_dir)
            sampled, _, _ = sample_metrics(gen, data, params.model.sampling, reference)
            greedy, _, _ = sample_metrics(
                gen, data, params.model.sampling, reference, temperature=0
            )
            results[label] = {
                **loss,
                **prediction_metrics(gen, data),
                "sample_repeat_rate": sampled["sample_repeat_rate"],
                "greedy_repeat_rate": greedy["sample_repeat_rate"],
                "sample_oa_mean": sampled["sample_oa_mean"],
            }
            timings[label] = round(info["train_seconds"], 2)
            print(label, results[label])
        write_json(tmp / "results.json", results)
        write_json(tmp / "timings.json", timings)


if __name__ == "__main__":
    main()
