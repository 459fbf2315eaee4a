"""Stage deps cannot drift: every module a stage script imports (transitively, inside
``src/midiml``) is covered by one of that stage's ``deps`` in ``dvc.yaml``, and the
library's packages import each other in one direction only."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO

SRC = REPO / "src"
LIB = SRC / "midiml"


def module_file(name: str) -> Path | None:
    """The file of ``midiml.a.b`` (module or package ``__init__``), or None if not ours."""
    if name != "midiml" and not name.startswith("midiml."):
        return None
    base = SRC.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.exists():
            return candidate
    return None


def imported_modules(path: Path) -> set[str]:
    """Every ``midiml`` module named by an import anywhere in ``path`` (also in functions)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return {n for n in names if module_file(n) is not None}


def import_closure(script: Path) -> set[Path]:
    """All files of ``src/midiml`` that ``script`` needs, parents' ``__init__`` included."""
    seen: set[Path] = set()
    todo = [script]
    while todo:
        for name in imported_modules(todo.pop()):
            parts = name.split(".")
            for i in range(1, len(parts) + 1):  # importing a.b.c runs a and a.b first
                f = module_file(".".join(parts[:i]))
                if f is not None and f not in seen:
                    seen.add(f)
                    todo.append(f)
    return seen


def stages() -> dict[str, dict]:
    """Each stage of ``dvc.yaml`` as {cmd, deps} (a ``foreach`` stage once, unexpanded)."""
    spec = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    return {name: stage.get("do", stage) for name, stage in spec.items()}


def script_of(cmd: str) -> Path:
    words = cmd.split()
    scripts = [w for w in words if w.startswith("stages/") and w.endswith(".py")]
    assert scripts, f"stage command names no stages/*.py script: {cmd!r}"
    return REPO / scripts[0]


def uncovered(script: Path, deps: list[str]) -> list[str]:
    dep_paths = [(REPO / d).resolve() for d in deps if "${" not in d]
    needed = import_closure(script) | {script}
    missing = [
        f for f in needed if not any(f == d or d in f.parents for d in dep_paths)
    ]
    return sorted(str(f.relative_to(REPO)) for f in missing)


@pytest.mark.parametrize("name", sorted(stages()))
def test_stage_deps_cover_the_import_closure(name: str):
    stage = stages()[name]
    script = script_of(stage["cmd"])
    assert uncovered(script, stage.get("deps", [])) == [], (
        f"dvc.yaml stage {name!r} misses deps its script imports"
    )


def test_the_check_catches_a_removed_dependency():
    stage = stages()["train_generator"]
    deps = [d for d in stage["deps"] if d != "src/midiml/generate"]
    assert "src/midiml/generate/train.py" in uncovered(script_of(stage["cmd"]), deps)


LAYERS = ["config", "io", "tracking", "training", "data", "represent",
          "generate", "classify", "cluster", "evaluate", "report", "cli", "params_sync"]


def package_of(path: Path) -> str:
    rel = path.relative_to(LIB)
    return rel.parts[0].removesuffix(".py")


def package_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for f in LIB.rglob("*.py"):
        src = package_of(f)
        for name in imported_modules(f):
            target = module_file(name)
            if target is not None and target != LIB / "__init__.py":
                dst = package_of(target)
                if dst != src:
                    graph.setdefault(src, set()).add(dst)
    return graph


def test_packages_import_in_one_direction():
    """No cycle between packages: data -> represent -> generate/classify/cluster -> evaluate -> report."""
    graph = package_graph()
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            assert state.get(nxt) != 1, f"package cycle: {' -> '.join([*path, nxt])}"
            if nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])


def test_evaluate_holds_pure_metrics_only():
    """evaluate/ measures arrays and tables; it never imports the models it measures."""
    assert not package_graph().get("evaluate", set()) & {"generate", "classify", "cluster"}
