"""DVC stage `classifier_copies`: re-encoded copies of the training songs as feature rows, and
the made-up loops the selection scores -> data/classifier_copies/."""

import time

from midiml.classify.runs import write_copies
from midiml.classify.tables import read_tables
from midiml.config import load_params
from midiml.io import atomic_dir


def main() -> None:
    start = time.perf_counter()
    params = load_params()
    files, splits, _, notes = read_tables()
    with atomic_dir("data/classifier_copies") as tmp:
        write_copies(params, files, splits, notes, tmp)
    print(f"classifier_copies: {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
