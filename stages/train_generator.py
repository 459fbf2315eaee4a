"""DVC stage `train_generator@<name>`: fit generator `model.generators.<name>` on the training
windows -> models/generators/<name>/.

Wall time goes to train.json and MLflow (machine-dependent, so never into the reproducible
metrics file).
"""

import json
import sys

from midiml.config import load_params
from midiml.generate.train import train_generator
from midiml.io import atomic_dir
from midiml.represent.windows import EventData


def main(name: str) -> None:
    params = load_params()
    if name not in params.model.generators:
        sys.exit(f"unknown generator {name!r}; configured: {', '.join(params.model.generators)}")
    data = EventData.load("data/processed/windows.npz")
    with atomic_dir(f"models/generators/{name}") as tmp:
        info = train_generator(name, params.model.generators[name], params, data, tmp)
        (tmp / "train.json").write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
    print(f"{name}: {info['epochs']} epochs, {info['train_seconds']:.1f} s")


if __name__ == "__main__":
    main(sys.argv[1])
