"""Write ``params.yaml`` as Hydra's composition of ``conf/`` defaults (what dvc exp run does)."""

from __future__ import annotations

import sys

import yaml

from midiml.config import compose_defaults


def main() -> None:
    composed = compose_defaults(sys.argv[1:])
    with open("params.yaml", "w") as f:
        yaml.safe_dump(composed, f, sort_keys=False)


if __name__ == "__main__":
    main()
