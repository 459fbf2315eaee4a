"""DVC stage `train_generator@<name>`: fit generator `model.generators.<name>` on the training
windows -> models/generators/<name>/.

train.json keeps what the same params reproduce (epochs, the validation history); the wall
time and MLflow run id go to reports/timings/generator_<name>.json and MLflow, so a rerun
leaves the folder, and its hash in dvc.lock, as it was.
"""

import sys

from midiml.config import load_params
from midiml.generate.train import train_generator
from midiml.io import atomic_dir, split_run_dependent, write_json, write_timings
from midiml.represent.windows import EventData


def main(name: str) -> None:
    params = load_params()
    if name not in params.model.generators:
        sys.exit(f"unknown generator {name!r}; configured: {', '.join(params.model.generators)}")
    data = EventData.load("data/processed/windows.npz")
    with atomic_dir(f"models/generators/{name}") as tmp:
        info = train_generator(name, params.model.generators[name], params, data, tmp)
        kept, timings = split_run_dependent(info)
        write_json(tmp / "train.json", kept)
    write_timings(f"generator_{name}", timings)
    print(f"{name}: {info['epochs']} epochs, {info['train_seconds']:.1f} s")


if __name__ == "__main__":
    main(sys.argv[1])
