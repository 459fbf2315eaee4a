"""Stages whose outputs changed while nothing they depend on did, from dvc.lock's git history.

Each committed dvc.lock records, per stage, the hashes of its dependencies, its params and
the hashes of its outputs. Two commits with the same command, dependency hashes and params
but different output hashes mean the stage is not reproducible (wall times or run ids in an
output, unstable bytes), or that the environment changed between the runs (library
versions). After two `dvc repro -f` runs committed on an unchanged checkout, this should list
nothing (docs/configuration.md, "Outputs byte for byte").

    python benchmarks/lock_history.py            # every commit that touched dvc.lock
    python benchmarks/lock_history.py -n 10      # the last 10 of them

Reads git only; writes nothing.
"""

from __future__ import annotations

import argparse
import json
import subprocess
from collections import defaultdict

import yaml


def lock_commits(limit: int | None) -> list[tuple[str, str]]:
    """(short hash, ISO date) of the commits that changed dvc.lock, newest first."""
    cmd = ["git", "log", "--format=%h %cI", *(["-n", str(limit)] if limit else []), "--"]
    out = subprocess.run([*cmd, "dvc.lock"], capture_output=True, text=True, check=True)
    return [tuple(line.split()) for line in out.stdout.splitlines() if line]  # type: ignore[misc]


def stage_entries(commit: str) -> dict[str, tuple[str, dict[str, str]]]:
    """stage -> (what it ran on: cmd, deps, params as one string; output path -> md5)."""
    text = subprocess.run(
        ["git", "show", f"{commit}:dvc.lock"], capture_output=True, text=True, check=True
    ).stdout
    entries = {}
    for stage, d in (yaml.safe_load(text) or {}).get("stages", {}).items():
        deps = sorted((x["path"], x.get("md5")) for x in d.get("deps", []))
        key = json.dumps([d.get("cmd"), deps, d.get("params")], sort_keys=True)
        entries[stage] = (key, {x["path"]: x.get("md5") for x in d.get("outs", [])})
    return entries


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=None, help="only the last N commits of dvc.lock")
    limit = ap.parse_args().n
    runs: dict[tuple[str, str], list[tuple[str, dict[str, str]]]] = defaultdict(list)
    for commit, date in lock_commits(limit):
        for stage, (key, outs) in stage_entries(commit).items():
            runs[(stage, key)].append((f"{commit} ({date[:16]})", outs))
    found = 0
    for (stage, _), seen in sorted(runs.items()):
        distinct = {json.dumps(outs, sort_keys=True): when for when, outs in seen}
        if len(distinct) < 2:
            continue
        found += 1
        first = seen[0][1]
        changed = sorted(p for p in first if any(outs.get(p) != first[p] for _, outs in seen))
        print(f"{stage}: {len(distinct)} different outputs for the same inputs")
        print(f"  outputs that changed: {', '.join(changed)}")
        print(f"  commits: {', '.join(distinct.values())}")
    print(f"{found} cases" if found else "every stage's outputs followed its inputs")


if __name__ == "__main__":
    main()
