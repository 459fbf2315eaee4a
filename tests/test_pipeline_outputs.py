"""Checks on what the pipeline wrote (run after `dvc repro` / `make small`; skipped before)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from tests.conftest import REPO

INTERIM = REPO / "data" / "interim"


@pytest.fixture(scope="module")
def tables() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    needed = [INTERIM / f for f in ("files.parquet", "notes.parquet", "splits.parquet")]
    if not all(p.exists() for p in needed):
        pytest.skip("pipeline outputs absent: run `make small` or `make repro` first")
    return tuple(pd.read_parquet(p) for p in needed)  # type: ignore[return-value]


def test_counts_reconcile(tables):
    files, notes, _ = tables
    table = json.loads((REPO / "reports" / "metrics" / "dataset.json").read_text())
    assert sum(r["found"] for r in table.values()) == len(files)
    for genre, row in table.items():
        g = files[files["genre"] == genre]
        assert row["found"] == row["files"] + row["quarantined"] == len(g)
    ok = files[files["status"] == "ok"]
    per_file = notes.groupby("file_id").size()
    assert per_file.reindex(ok["file_id"]).tolist() == ok["n_notes"].tolist()
    quarantined = files[files["status"] == "quarantined"]
    assert quarantined["reason"].notna().all()
    assert not set(quarantined["file_id"]) & set(notes["file_id"])


def test_notes_are_sane(tables):
    _, notes, _ = tables
    assert notes["pitch"].between(0, 127).all()
    assert notes["velocity"].between(0, 127).all()
    assert (notes["onset_s"] >= 0).all() and (notes["duration_s"] >= 0).all()


def test_splits_cover_usable_songs_once(tables):
    files, _, splits = tables
    ok = set(files.loc[files["status"] == "ok", "file_id"])
    assert set(splits["file_id"]) == ok and splits["file_id"].is_unique
    assert set(splits["split"]) <= {"train", "val", "test"}
    for _, g in splits.groupby("genre"):
        if len(g) >= 3:
            assert {"train", "val", "test"} <= set(g["split"])
