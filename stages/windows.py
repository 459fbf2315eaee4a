"""DVC stage `windows`: event streams of every split song and their N_in -> N_out windows,
written a song at a time (memory flat in the collection's size)."""

import pandas as pd
from omegaconf import OmegaConf

from midiml.config import load_params
from midiml.data.split import used_files
from midiml.io import atomic_path
from midiml.represent.windows import save_event_data_streamed

OUT = "data/processed/windows.npz"


def main() -> None:
    params = load_params()
    w = params.model.windows
    splits = pd.read_parquet("data/interim/splits.parquet")
    files = pd.read_parquet("data/interim/files.parquet")
    keep = used_files(files, w.get("sources"))  # the generators' own sources
    splits = splits[splits["file_id"].isin(keep)]
    with atomic_path(OUT) as tmp:
        counts = save_event_data_streamed(
            "data/interim/notes.parquet",
            splits,
            int(w.n_in),
            int(w.n_out),
            OmegaConf.to_container(w.max_per_song),
            tmp,
        )
    for split in ("train", "val", "test"):
        print(f"{split}: {counts['songs'][split]} songs, {counts['windows'][split]} windows")


if __name__ == "__main__":
    main()
