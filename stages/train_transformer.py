"""DVC stage `train_transformer`: the token Transformer `model.transformer` (REMI tokens of
data/processed/) -> models/generators/transformer/ (checkpoint, tokenizer, meta.json).

`trainer=gpu` also switches `model.transformer` to its GPU sizes (conf/trainer/gpu.yaml).
"""

import json

from midiml.config import load_params
from midiml.generate.transformer import train_transformer
from midiml.io import atomic_dir

OUT = "models/generators/transformer"


def main() -> None:
    params = load_params()
    with atomic_dir(OUT) as tmp:
        info = train_transformer(
            params.model.transformer,
            params,
            "data/processed/tokens.npz",
            "data/processed/tokenizer.json",
            tmp,
        )
        (tmp / "train.json").write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
    print(
        f"transformer: {info['epochs']} epochs, {info['train_seconds']:.1f} s, "
        f"best val {info['best_val_loss_nats_per_token']:.4f} nats/token"
    )


if __name__ == "__main__":
    main()
