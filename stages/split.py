"""DVC stage `split`: song-level train/val/test assignment shared by every learner."""

import pandas as pd

from midiml.config import load_params
from midiml.data.split import split_songs
from midiml.io import write_parquet


def main() -> None:
    params = load_params()
    files = pd.read_parquet("data/interim/files.parquet")
    splits = split_songs(files, params.data.split.val, params.data.split.test, params.data.seed)
    write_parquet(splits, "data/interim/splits.parquet")
    print(splits.groupby(["genre", "split"]).size().unstack(fill_value=0).to_string())


if __name__ == "__main__":
    main()
