"""DVC stage `tokens`: every split song of the generators' sources as REMI tokens (+ transposed
copies of the training songs) -> data/processed/tokens.npz, and the tokenizer's config ->
data/processed/tokenizer.json."""

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
    params = load_params()
    cfg = params.model.tokens
    files = pd.read_parquet("data/interim/files.parquet")
    keep = used_files(files, params.model.windows.get("sources"))  # the generators' sources
    splits = pd.read_parquet("data/interim/splits.parquet")
    splits = splits[splits["file_id"].isin(keep)]
    notes = pd.read_parquet("data/interim/notes.parquet", filters=[("file_id", "in", keep)])
    tokenizer = make_tokenizer(
        sorted(splits["genre"].unique()),
        OmegaConf.to_container(cfg.beat_res),
        int(cfg.num_velocities),
        list(cfg.pitch_range),
    )
    data = build_token_dataset(
        notes, splits, tokenizer, list(cfg.transpositions), int(cfg.max_tokens_per_song)
    )
    with atomic_path(OUT) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, **data)
    with atomic_path(TOKENIZER) as tmp:
        save_tokenizer(tokenizer, tmp)
    for split in ("train", "val", "test"):
        rows = np.flatnonzero(data["splits"] == split)
        n_tok = int(sum(data["offsets"][r + 1] - data["offsets"][r] for r in rows))
        print(f"{split}: {len(rows)} sequences, {n_tok} tokens")
    print(f"vocabulary: {len(tokenizer)} tokens")


if __name__ == "__main__":
    main()
