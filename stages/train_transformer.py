"""DVC stage `train_transformer`: the token Transformer -> models/transformer/ (+ tokenizer).

Reads ``model.generators.transformer`` when the generator group is wired into the model
config, else conf/generator/<profile>.yaml (``transformer``; ``transformer_gpu`` when
``trainer=gpu``).
"""

import json
import sys

from omegaconf import OmegaConf

from midiml.config import load_params
from midiml.generate.transformer import train_transformer
from midiml.io import atomic_dir


def generator_config(params, profile: str | None = None):
    gens = params.model.get("generators") or {}
    if "transformer" in gens and profile is None:
        return gens.transformer
    gpu = str(params.trainer.accelerator) != "cpu"
    name = profile or ("transformer_gpu" if gpu else "transformer")
    cfg = OmegaConf.load(f"conf/generator/{name}.yaml")
    if "defaults" in cfg:
        base = OmegaConf.load("conf/generator/transformer.yaml")
        cfg = OmegaConf.merge(base, {k: v for k, v in cfg.items() if k != "defaults"})
    return cfg


def main(profile: str | None = None) -> None:
    params = load_params()
    cfg = generator_config(params, profile)
    with atomic_dir("models/transformer") as tmp:
        info = train_transformer(
            cfg, params, "data/processed/tokens.npz", "data/processed/tokenizer.json", tmp
        )
        (tmp / "train.json").write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
    print(
        f"transformer: {info['epochs']} epochs, {info['train_seconds']:.1f} s, "
        f"best val {info['best_val_loss_nats_per_token']:.4f} nats/token"
    )


if __name__ == "__main__":
    main(*sys.argv[1:2])
