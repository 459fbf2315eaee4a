"""Stage deps cannot drift: every module a stage script imports (transitively, inside
``src/midiml``) is covered by one of that stage's ``deps`` in ``dvc.yaml``, and the
library's packages import each other in one direction only."""

from __future__ import annotations

import ast
import functools
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
    missing = [f for f in needed if not any(f == d or d in f.parents for d in dep_paths)]
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


LAYERS = [
    "config",
    "io",
    "tracking",
    "training",
    "data",
    "represent",
    "generate",
    "classify",
    "cluster",
    "evaluate",
    "report",
    "cli",
    "params_sync",
]


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
    """No cycle between packages (data -> represent -> generate/classify/cluster -> evaluate
    -> report)."""
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


def needed_deps(script: Path) -> list[str]:
    """The smallest dvc.yaml deps covering ``script``: its file, the packages it reaches (as
    folders) and the top-level modules it imports. ``python -m tests.test_stage_deps`` prints
    them for every stage."""
    out = {str(script.relative_to(REPO))}
    for f in import_closure(script):
        rel = f.relative_to(LIB)
        if len(rel.parts) > 1:
            out.add(f"src/midiml/{rel.parts[0]}")
        else:
            out.add(str(f.relative_to(REPO)))
    return sorted(out, key=lambda d: (not d.startswith("stages/"), d))


def test_stage_deps_are_exactly_the_code_the_script_needs():
    """No stale code dep either (it would rerun a stage for nothing): regenerate with
    ``python -m tests.test_stage_deps --write``."""
    for name, stage in stages().items():
        code = [d for d in stage.get("deps", []) if d.startswith(("src/", "stages/"))]
        assert code == needed_deps(script_of(stage["cmd"])), f"stage {name!r}"


def write_deps() -> None:
    """Rewrite each stage's code deps in dvc.yaml (data deps and comments are kept)."""
    path = REPO / "dvc.yaml"
    lines = path.read_text().split("\n")
    code = {n: needed_deps(script_of(s["cmd"])) for n, s in stages().items()}
    out, stage, i = [], None, 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("  ") and not line.startswith("   ") and line.rstrip().endswith(":"):
            stage = line.strip()[:-1]
        out.append(line)
        i += 1
        if line.strip() == "deps:" and stage in code:
            indent = line[: len(line) - len(line.lstrip())] + "  "
            kept = []
            while i < len(lines) and lines[i].startswith(indent + "- "):
                if not lines[i].strip()[2:].startswith(("src/", "stages/")):
                    kept.append(lines[i])
                i += 1
            out += [f"{indent}- {d}" for d in code[stage]] + kept
    path.write_text("\n".join(out))


if __name__ == "__main__":
    import sys

    if "--write" in sys.argv:
        write_deps()
    for stage_name, stage in stages().items():
        print(stage_name, needed_deps(script_of(stage["cmd"])))


@functools.cache
def imports_torch_at_top(module: str) -> bool:
    """Whether importing a project module starts torch (its top-level imports, followed
    through the project's own modules)."""
    path = LIB.parent / (module.replace(".", "/") + ".py")
    if not path.exists():
        path = LIB.parent / module.replace(".", "/") / "__init__.py"
    if not path.exists():
        return False
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        else:
            continue
        for name in names:
            if name == "torch" or name.startswith("torch."):
                return True
            if name.startswith("midiml.") and imports_torch_at_top(name):
                return True
    return False


def test_no_function_level_imports_of_the_project():
    """The library imports its own modules at the top (heavy third-party imports may wait,
    and so may a project module that starts torch: e.g. a process that only sometimes scores
    the CNN); only the CLI entry point defers the rest, to start fast."""
    offenders = []
    for f in LIB.rglob("*.py"):
        if f.name == "cli.py":
            continue
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                for inner in ast.walk(node):
                    if isinstance(inner, ast.ImportFrom):
                        names = [inner.module or ""]
                    elif isinstance(inner, ast.Import):
                        names = [a.name for a in inner.names]
                    else:
                        continue
                    project = [n for n in names if n == "midiml" or n.startswith("midiml.")]
                    if any(not imports_torch_at_top(n) for n in project):
                        offenders.append(f"{f.relative_to(REPO)}:{inner.lineno}")
    assert offenders == []
