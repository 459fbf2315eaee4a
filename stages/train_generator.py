"""DVC stage `train_generator@<name>`: fit one generator on the training windows -> models/<name>/.

Wall time goes to models/<name>/train.json and MLflow (machine-dependent, so never into
the reproducible metrics file).
"""

import json
import sys

from midiml.config import load_params
from midiml.generate.train import train_generator
from midiml.io import atomic_dir
from midiml.represent.windows import EventData


def main(name: str) -> None:
    params = load_params()
    data = EventData.load("data/processed/windows.npz")
    with atomic_dir(f"models/{name}") as tmp:
        info = train_generator(name, params, data, tmp)
        (tmp / "train.json").write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
    print(f"{name}: {info['epochs']} epochs, {info['train_seconds']:.1f} s")


if __name__ == "__main__":
    main(sys.argv[1])
