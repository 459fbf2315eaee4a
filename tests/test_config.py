"""params.yaml is exactly Hydra's composition of conf/ defaults (what dvc exp run writes)."""

from __future__ import annotations

import configparser
import subprocess

import yaml

from midiml.config import compose_defaults, flatten
from tests.conftest import REPO


def _committed_params() -> dict | None:
    """params.yaml as committed (``dvc exp run -S ...`` rewrites the workspace copy)."""
    out = subprocess.run(
        ["git", "show", "HEAD:params.yaml"], cwd=REPO, capture_output=True, text=True, check=False
    )
    return yaml.safe_load(out.stdout) if out.returncode == 0 else None


def test_params_yaml_is_the_composition_of_defaults():
    expected = compose_defaults(conf_dir=str(REPO / "conf"))
    workspace = yaml.safe_load((REPO / "params.yaml").read_text())
    if workspace != expected:  # after an experiment the committed file must still agree
        assert _committed_params() == expected, "run `make params` and commit params.yaml"


def test_dvc_composes_params_with_hydra():
    cfg = configparser.ConfigParser()
    cfg.read_string((REPO / ".dvc" / "config").read_text().replace("    ", ""))
    assert cfg["hydra"]["enabled"] == "true"
    assert cfg["hydra"]["config_dir"] == "conf"


def test_small_and_corpus_profiles():
    small = compose_defaults(["data=small"], conf_dir=str(REPO / "conf"))["data"]
    full = compose_defaults(conf_dir=str(REPO / "conf"))["data"]
    assert small["sources"] == full["sources"]  # same downloads, fewer files
    assert small["subset_per_genre"] == 12 and small["max_epochs"] is not None
    corpus = compose_defaults(["data=corpus"], conf_dir=str(REPO / "conf"))["data"]
    assert {s["kind"] for s in corpus["sources"].values()} == {"music21"}
    assert len(corpus["sources"]) == 3


def test_flatten():
    assert flatten({"a": {"b": 1, "c": [1, 2]}, "d": None}) == {
        "a.b": 1,
        "a.c": "[1, 2]",
        "d": None,
    }
