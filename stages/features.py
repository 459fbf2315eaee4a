"""DVC stage `features`: note events -> one feature row per usable file."""

import time

import pandas as pd

from midiml.config import load_params
from midiml.io import write_parquet
from midiml.represent.features import extract_features_streamed


def main() -> None:
    params = load_params()
    f = params.features
    files = pd.read_parquet("data/interim/files.parquet")
    start = time.perf_counter()
    table = extract_features_streamed(
        "data/interim/notes.parquet",
        files,
        f.onset_resolution,
        f.grid_tolerance,
        list(f.onset_divisors or []),
    )
    took = time.perf_counter() - start
    write_parquet(table, "data/features/features.parquet")
    print(f"features: {len(table)} files x {table.shape[1] - 2} features in {took:.2f} s")


if __name__ == "__main__":
    main()
