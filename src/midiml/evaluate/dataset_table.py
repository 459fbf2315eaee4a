"""The seed study's dataset table, recomputed for our data from the ingest's file table."""

from __future__ import annotations

import pandas as pd

# The seed study's published table (for comparison only; never used in our numbers).
SEED_TABLE = {
    "lofi": {
        "files": 93,
        "avg_length_s": 9.3,
        "max_length_s": 32.0,
        "avg_tracks": 1.3,
        "avg_msgs_per_file": 96,
        "total_msgs": 8910,
    },
    "classical": {
        "files": 292,
        "avg_length_s": 254.8,
        "max_length_s": 2011.1,
        "avg_tracks": 11.2,
        "avg_msgs_per_file": 6218,
        "total_msgs": 1815652,
    },
    "videogame": {
        "files": 992,
        "avg_length_s": 10918.0,
        "max_length_s": 10737617.4,
        "avg_tracks": 8.7,
        "avg_msgs_per_file": 5342,
        "total_msgs": 5299385,
    },
}
COLUMNS = [
    "found",
    "files",
    "quarantined",
    "avg_length_s",
    "max_length_s",
    "avg_tracks",
    "avg_msgs_per_file",
    "total_msgs",
]


def dataset_table(files: pd.DataFrame) -> dict[str, dict[str, float | int]]:
    """Per genre: files used, their length/track/message statistics, and files quarantined."""
    out: dict[str, dict[str, float | int]] = {}
    for genre, g in files.groupby("genre", sort=True):
        ok = g[g["status"] == "ok"]
        out[str(genre)] = {
            "found": int(len(g)),
            "files": int(len(ok)),
            "quarantined": int((g["status"] == "quarantined").sum()),
            "avg_length_s": round(float(ok["length_s"].mean()), 2) if len(ok) else 0.0,
            "max_length_s": round(float(ok["length_s"].max()), 2) if len(ok) else 0.0,
            "avg_tracks": round(float(ok["n_tracks"].mean()), 2) if len(ok) else 0.0,
            "avg_msgs_per_file": round(float(ok["n_messages"].mean()), 1) if len(ok) else 0.0,
            "total_msgs": int(ok["n_messages"].sum()),
        }
    return out
