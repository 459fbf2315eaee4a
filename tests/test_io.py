"""Atomic writers shared by the stages and benchmarks."""

import json

from midiml.io import update_json


def test_update_json_merges_top_level_keys_and_keeps_the_others(tmp_path):
    path = tmp_path / "metrics" / "benchmarks.json"
    update_json(path, {"features": {"speedup": 90.0}})
    merged = update_json(path, {"ingest": {"files": 3}, "features": {"speedup": 96.8}})
    assert merged == {"features": {"speedup": 96.8}, "ingest": {"files": 3}}
    assert json.loads(path.read_text()) == merged
    assert [p.name for p in path.parent.iterdir()] == ["benchmarks.json"]  # no temp file left
