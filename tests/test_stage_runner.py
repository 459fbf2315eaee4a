"""`stages/run.sh`: stage commands find a Python that has midiml, or say so in one line."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
RUNNER = REPO / "stages" / "run.sh"


def run(cwd: Path, path: str, *args: str) -> subprocess.CompletedProcess:
    env = {"PATH": path, "HOME": os.environ.get("HOME", "/tmp")}
    return subprocess.run(
        ["sh", str(RUNNER), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )


def test_every_stage_command_goes_through_the_runner():
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    for name, stage in stages.items():
        cmd = stage.get("do", stage)["cmd"]
        assert cmd.startswith("sh stages/run.sh stages/"), (name, cmd)


def test_without_an_activated_venv_it_uses_the_projects_venv(tmp_path):
    venv_bin = tmp_path / ".venv" / "bin"
    venv_bin.mkdir(parents=True)
    # stands in for the project's venv: a Python that can import midiml and its dependencies
    (venv_bin / "python").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    (venv_bin / "python").chmod(0o755)
    code = "import midiml.config, sys; print('ok', sys.executable)"
    res = run(tmp_path, "/usr/bin:/bin", "-c", code)
    assert res.returncode == 0 and res.stdout.split() == ["ok", sys.executable], res.stderr


def test_with_no_python_that_has_midiml_it_says_so_in_one_line(tmp_path):
    bare = tmp_path / "bin"
    bare.mkdir()
    for tool in ("sh", "env"):
        found = shutil.which(tool)
        if found:
            (bare / tool).symlink_to(found)
    res = run(tmp_path, str(bare), "stages/ingest.py")
    assert res.returncode == 3
    assert res.stderr.strip().splitlines() == [res.stderr.strip()]
    assert "stages/ingest.py" in res.stderr and "make setup" in res.stderr
