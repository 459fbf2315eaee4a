"""DVC stage `train_transformer`: the token Transformer `model.transformer` (tokens of
data/processed/) -> models/generators/transformer/ (checkpoint, numpy weights, tokenizer,
meta.json). Lightning's checkpoints stay in checkpoints/transformer/ so that
`-S model.transformer.resume=true` continues a killed run. `trainer=gpu` also switches
`model.transformer` to its GPU sizes (conf/trainer/gpu.yaml).
"""

from midiml.config import load_params
from midiml.generate.transformer import train_transformer
from midiml.io import atomic_dir, split_run_dependent, write_json, write_timings

OUT = "models/generators/transformer"
CHECKPOINTS = "checkpoints/transformer"


def main() -> None:
    params = load_params()
    cfg = params.model.transformer
    with atomic_dir(OUT) as tmp:
        info = train_transformer(
            cfg,
            params,
            "data/processed/tokens.npz",
            "data/processed/tokenizer.json",
            tmp,
            CHECKPOINTS if cfg.get("resume") else None,
        )
        kept, timings = split_run_dependent(info)  # wall times and rates: reports/timings/
        write_json(tmp / "train.json", kept)
    write_timings("generator_transformer", timings)
    print(
        f"transformer: {info['parameters']} parameters, {info['epochs']} epochs, "
        f"{info['train_seconds']:.1f} s, {info['train_tokens_per_second']:.0f} tokens/s, "
        f"best val {info['best_val_bits_per_token']:.4f} bits/token"
    )


if __name__ == "__main__":
    main()
