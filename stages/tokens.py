"""DVC stage `tokens`: every track of every split song (all sources, drums included) as one
REMI+programs token stream with BPE (+ transposed copies of the training songs) ->
data/processed/tokens.npz, and the tokenizer (config + BPE + genres) ->
data/processed/tokenizer.json."""

import time

import numpy as np
import pandas as pd
from omegaconf import OmegaConf

from midiml.config import load_params
from midiml.data.split import used_files
from midiml.io import atomic_path
from midiml.represent.tokens import build_token_dataset, make_tokenizer, save_tokenizer

OUT = "data/processed/tokens.npz"
TOKENIZER = "data/processed/tokenizer.json"


def main() -> None:
    start = time.perf_counter()
    params = load_params()
    cfg = params.model.tokens
    files = pd.read_parquet("data/interim/files.parquet")
    keep = used_files(files, cfg.get("sources"))
    splits = pd.read_parquet("data/interim/splits.parquet")
    splits = splits[splits["file_id"].isin(keep)]
    notes = pd.read_parquet("data/interim/notes.parquet", filters=[("file_id", "in", keep)])
    tokenizer = make_tokenizer(
        OmegaConf.to_container(cfg.beat_res), int(cfg.num_velocities), list(cfg.pitch_range)
    )
    genres = sorted(splits["genre"].unique())
    data = build_token_dataset(
        notes,
        splits,
        tokenizer,
        genres,
        int(cfg.transpositions),
        list(cfg.transpose_range),
        int(cfg.max_bars),
        int(cfg.bpe_vocab_size),
        int(params.seed),
        int(params.get("cpu_threads", 1) or 1),
    )
    with atomic_path(OUT) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, **data)
    with atomic_path(TOKENIZER) as tmp:
        save_tokenizer(tokenizer, tmp, genres)
    lengths = np.diff(data["offsets"])
    for split in ("train", "val", "test"):
        rows = data["splits"] == split
        print(
            f"{split}: {int(rows.sum())} sequences, {int(lengths[rows].sum())} tokens "
            f"({int(data['base_tokens'][rows].sum())} before BPE)"
        )
    print(f"vocabulary: {int(data['vocab_size'])} ids; {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
