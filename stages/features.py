"""DVC stage `features`: note events -> one feature row per usable file."""

import time

import pandas as pd

from midiml.config import load_params
from midiml.represent.features import write_features_streamed


def main() -> None:
    params = load_params()
    f = params.features
    files = pd.read_parquet("data/interim/files.parquet")
    start = time.perf_counter()
    rows, columns = write_features_streamed(  # a row group per notes row group: flat memory
        "data/interim/notes.parquet",
        files,
        "data/features/features.parquet",
        f.onset_resolution,
        f.grid_tolerance,
        list(f.onset_divisors or []),
        n_jobs=int(params.get("cpu_threads", 1) or 1),  # row groups at a time (processes)
    )
    took = time.perf_counter() - start
    print(f"features: {rows} files x {columns - 2} features in {took:.2f} s")


if __name__ == "__main__":
    main()
