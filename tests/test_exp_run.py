"""The design card's command, run for real: `dvc exp run -S model.loss.alpha=1.5`.

A temporary copy of the repository keeps the real `conf/`, `params.yaml` and `dvc.yaml`
(deps, params, outs, foreach) but every stage's command is a stub that records its name and
writes fresh outputs, so DVC's own Hydra composition and change detection decide what reruns,
in seconds instead of the pipeline's half hour.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from midiml.config import compose_defaults
from tests.conftest import REPO

STUB = '''"""Stand-in for a stage: note that it ran, write fresh outputs (new content each run)."""
import json, pathlib, sys, uuid
name = sys.argv[1]
with open("ran.log", "a") as log:
    log.write(name + "\\n")
for out in json.loads(pathlib.Path("stub_outs.json").read_text())[name]:
    p = pathlib.Path(out)
    text = json.dumps({"stage": name, "run": uuid.uuid4().hex})
    if p.suffix:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    else:
        p.mkdir(parents=True, exist_ok=True)
        (p / "stub.json").write_text(text)
'''


def dvc(cwd: Path, *args: str) -> str:
    res = subprocess.run(
        [sys.executable, "-m", "dvc", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "DVC_NO_ANALYTICS": "1"},
    )
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    return res.stdout


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def stubbed_copy(dest: Path) -> None:
    """The repository's config, code and pipeline in ``dest``, stage commands stubbed."""
    for folder in ("conf", "stages", "src"):
        shutil.copytree(REPO / folder, dest / folder, ignore=shutil.ignore_patterns("__pycache__"))
    for name in (".gitignore", "reports/benchmarks.md"):
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / name, dest / name)
    # params.yaml as the defaults compose, not the checkout's file: after `dvc exp run -S
    # data=small` (CI runs it before the tests) that file holds the small profile
    (dest / "params.yaml").write_text(yaml.safe_dump(compose_defaults([]), sort_keys=False))
    (dest / ".dvc").mkdir()
    shutil.copy(REPO / ".dvc" / "config", dest / ".dvc" / "config")
    pipeline = yaml.safe_load((REPO / "dvc.yaml").read_text())
    for name, stage in pipeline["stages"].items():
        body = stage["do"] if "foreach" in stage else stage
        label = f"{name}@${{key}}" if "foreach" in stage else name
        body["cmd"] = f"python stub.py {label}"
    (dest / "dvc.yaml").write_text(yaml.safe_dump(pipeline, sort_keys=False))
    (dest / "stub.py").write_text(STUB)
    (dest / ".gitignore").write_text((dest / ".gitignore").read_text() + "/ran.log\n")

    from dvc.repo import Repo

    with Repo(str(dest)) as repo:
        outs = {s.name: [str(o.def_path) for o in s.outs] for s in repo.index.stages}
    (dest / "stub_outs.json").write_text(json.dumps(outs))


@pytest.mark.skipif(shutil.which("git") is None, reason="dvc exp run needs git")
def test_card_command_reruns_the_loss_users_and_their_readers_only(tmp_path):
    git(tmp_path, "init", "-q")
    git(tmp_path, "config", "user.email", "test@example.com")
    git(tmp_path, "config", "user.name", "test")
    stubbed_copy(tmp_path)
    dvc(tmp_path, "repro", "--quiet")  # the baseline: every stage once
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-qm", "baseline")
    (tmp_path / "ran.log").unlink()

    # the card's command as written: 1.5 is the configured alpha, so it composes, runs, and
    # finds every stage up to date
    dvc(tmp_path, "exp", "run", "-S", "model.loss.alpha=1.5", "--name", "card")
    assert not (tmp_path / "ran.log").exists(), (tmp_path / "ran.log").read_text()

    dvc(tmp_path, "exp", "run", "-S", "model.loss.alpha=2.0", "--name", "alpha2")
    ran = sorted((tmp_path / "ran.log").read_text().split())
    # the ffnn and its ablation read model.loss; evaluation reads their models; the report
    # reads the evaluation's page. Nothing else (no other generator, no classifier).
    assert ran == ["evaluate_generators", "ffnn_ablation", "report", "train_generator@ffnn"]
    composed = yaml.safe_load((tmp_path / "params.yaml").read_text())
    assert composed["model"]["loss"]["alpha"] == 2.0
    assert composed["model"]["generators"]["ffnn"]["module"]["loss"] == composed["model"]["loss"]

    table = dvc(tmp_path, "exp", "show", "--csv", "--keep", "model.loss")
    print(table)
    rows = list(csv.reader(io.StringIO(table)))
    column = rows[0].index("model.loss.alpha")
    alphas = {r[0]: r[column] for r in rows[1:]}
    assert alphas["card"] == "1.5" and alphas["alpha2"] == "2.0"
