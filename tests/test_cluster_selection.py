"""The clustering's feature choice: file habits out, then genre-over-source on held-out sources."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from midiml.cluster.search import feature_set_check
from midiml.cluster.selection import candidates, explained_share, select_features
from midiml.config import compose_defaults
from midiml.report.clustering import feature_lines
from tests.conftest import REPO

CLUSTER = compose_defaults(conf_dir=str(REPO / "conf"))["cluster"]


# a file habit: the clustered sources differ (so it "finds" genre there), the held-out ones
# differ within each genre and not between them
HABIT = {
    "a_clustered": 0,
    "b_clustered": 10,
    "a_other1": 0,
    "a_other2": 10,
    "b_other1": 0,
    "b_other2": 10,
}


def _collections(n: int = 40, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two genres, each from a clustered source and two held-out sources. ``music`` differs
    by genre everywhere; ``habit`` by source only (``HABIT``); ``velocity_mean`` (a file
    habit by name) follows the genre; ``noise`` is noise."""
    rng = np.random.default_rng(seed)
    rows, files = [], []
    sources = {
        "a": ["a_clustered", "a_other1", "a_other2"],
        "b": ["b_clustered", "b_other1", "b_other2"],
    }
    for genre, srcs in sources.items():
        for src in srcs:
            for i in range(n):
                fid = f"{src}{i}"
                shift = 3.0 if genre == "b" else 0.0
                rows.append(
                    {
                        "file_id": fid,
                        "genre": genre,
                        "music": shift + rng.normal(),
                        "habit": HABIT[src] + rng.normal(),
                        "velocity_mean": shift + rng.normal(),
                        "noise": rng.normal(),
                    }
                )
                files.append({"file_id": fid, "genre": genre, "source": src})
    return pd.DataFrame(rows), pd.DataFrame(files)


def test_candidates_leave_out_file_habits_and_ids():
    feats, _ = _collections(3)
    assert candidates(feats, ["artifacts"]) == ["music", "habit", "noise"]
    assert candidates(feats, ["artifacts", "noise"]) == ["music", "habit"]
    assert candidates(feats, []) == ["music", "habit", "velocity_mean", "noise"]


def test_explained_share():
    assert explained_share(np.array([0, 0, 1, 1.0]), np.array(["x", "x", "y", "y"])) == 1.0
    assert explained_share(np.array([0, 1, 0, 1.0]), np.array(["x", "x", "y", "y"])) == 0.0
    assert explained_share(np.ones(4), np.array(["x", "x", "y", "y"])) == 0.0


def test_selection_keeps_music_stable_across_sources():
    feats, files = _collections()
    clustered = set(files.loc[files["source"].str.endswith("clustered"), "file_id"])
    sel = select_features(
        feats, files, clustered, {"exclude": ["artifacts"], "min_genre_over_source": 1.0}
    )
    assert sel.measured and sel.columns == ["music"]
    assert sel.held_out_sources == ["a_other1", "a_other2", "b_other1", "b_other2"]
    row = sel.table.set_index("feature").loc["habit"]
    assert row["source_share"] > row["genre_share"] and not row["kept"]
    # the clustered files never enter: changing them changes nothing
    moved = feats.copy()
    moved.loc[moved["file_id"].isin(clustered), "noise"] += 100.0
    again = select_features(
        moved, files, clustered, {"exclude": ["artifacts"], "min_genre_over_source": 1.0}
    )
    pd.testing.assert_frame_equal(again.table, sel.table)
    lines = "\n".join(feature_lines(sel, None))
    assert "1 of 3 music features" in lines and "| music |" in lines


@pytest.mark.parametrize("ratio", [None, 1.0])
def test_without_held_out_sources_every_candidate_is_kept(ratio):
    feats, files = _collections(5)
    everything = set(files["file_id"])  # every source clustered: nothing held out
    sel = select_features(
        feats, files, everything, {"exclude": ["artifacts"], "min_genre_over_source": ratio}
    )
    assert not sel.measured and sel.columns == ["music", "habit", "noise"]
    text = "\n".join(feature_lines(sel, None))
    assert ("filter is off" in text) == (ratio is None)
    assert ("not measured" in text) == (ratio is not None)


def test_feature_set_check_reads_each_column_set():
    feats, files = _collections(15)
    clustered = set(files.loc[files["source"].str.endswith("clustered"), "file_id"])
    rows = feats[feats["file_id"].isin(clustered)].reset_index(drop=True)
    cfg = {
        **CLUSTER,
        "compare_feature_sets": {
            "reducers": {"none": {}},
            "methods": {"kmeans": {"n_init": 4}},
        },
    }
    out = feature_set_check(
        rows, {"chosen": ["music"], "file_habits": ["habit"], "empty": []}, cfg, 0
    )
    assert set(out) == {"chosen", "file_habits"}
    assert out["chosen"]["k"] == 2 and out["chosen"]["n_features"] == 1
    # within the clustered collections the habit separates the genres too (one source each)
    assert out["file_habits"]["best_nmi"]["nmi"] > 0.9
    assert out["chosen"]["best_nmi"]["nmi"] > 0.5
    md = "\n".join(
        feature_lines(
            select_features(feats, files, clustered, CLUSTER["features"]), {"by_feature_set": out}
        )
    )
    assert "file habits only" in md
