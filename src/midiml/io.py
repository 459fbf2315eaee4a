"""Atomic file and folder writes: a failed stage must leave no half-written output."""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; move it into place only on success."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o644)  # mkstemp makes 0600 files; outputs are for everyone to read
        os.replace(tmp_path, target)
    finally:
        tmp_path.unlink(missing_ok=True)


@contextmanager
def atomic_dir(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary folder next to ``path``; swap it into place only on success."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o755)
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def pickle_ready(obj: Any, keep: Iterable[Any] = ()) -> Any:
    """``obj`` (returned, changed in place) made to pickle to the same bytes whenever it holds
    the same model: the same values alone do not give the same pickle.

    - Strings: pickle writes a string once and refers back to it when the *same object* comes
      again, so whether two equal strings are one object (e.g. an estimator's parameter names
      and its attribute names, after a load) changed the bytes from run to run. Every string
      in the object graph (dict keys and values, lists, tuples, object arrays) is replaced
      by its interned copy: equal strings are then always one object.
    - scikit-learn trees: a node record (seven numbers and a one-byte flag) is padded to 64
      bytes; a tree restored from a pickle gets its nodes in reused heap memory whose padding
      holds whatever was there, and numpy pickles those bytes too. Each tree's state is set
      again from a zeroed copy (the values are untouched).

    ``keep``: objects inside ``obj`` left as they are (pickled elsewhere, readied there).
    """
    import sys

    import numpy as np
    from sklearn.tree._tree import Tree

    seen: dict[int, Any] = {id(k): k for k in keep}

    def visit(node: Any) -> Any:
        if isinstance(node, str):
            return sys.intern(node)
        if isinstance(node, bytes | int | float | bool) or node is None:
            return node
        if id(node) in seen:
            return seen[id(node)]
        seen[id(node)] = node
        if isinstance(node, np.ndarray):
            if node.dtype == object:
                flat = node.reshape(-1)
                for i, value in enumerate(flat):
                    flat[i] = visit(value)
        elif isinstance(node, Tree):
            state = node.__getstate__()
            nodes = state["nodes"]
            clean = np.zeros(nodes.shape, nodes.dtype)
            for name in nodes.dtype.names:
                clean[name] = nodes[name]
            node.__setstate__(state | {"nodes": clean})
        elif isinstance(node, dict):
            items = [(visit(k), visit(v)) for k, v in node.items()]
            node.clear()
            node.update(items)
        elif isinstance(node, list):
            node[:] = [visit(v) for v in node]
        elif type(node) is tuple:
            seen[id(node)] = node = tuple(visit(v) for v in node)
        elif hasattr(node, "__dict__"):
            visit(vars(node))
        return node

    return visit(obj)


def write_json(path: str | os.PathLike[str], data: Any) -> None:
    """Write JSON atomically, sorted and indented so diffs stay readable."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=_jsonable) + "\n")


# Wall times change on every run (and machine): they live in their own git-ignored files here,
# not in the tracked pages and metrics, so a run on an unchanged checkout leaves those
# byte-identical. Written beside the stage's outputs, not declared as DVC outputs (dvc.lock
# would record their hash and change with every run); also logged to MLflow.
TIMINGS_DIR = Path("reports/timings")


# Keys whose values differ on every run, not only on every machine: wall times, rates per
# second and MLflow run ids. They go to TIMINGS_DIR (also the run ids: a fresh clone has no
# MLflow runs of ours to link to), never into a DVC output, whose hash they would change.
RUN_DEPENDENT_SUFFIXES = ("seconds", "second", "run_id")


def write_timings(name: str, data: Any) -> Path:
    """``reports/timings/<name>.json`` (git-ignored): one stage's machine-dependent times."""
    path = TIMINGS_DIR / f"{name}.json"
    write_json(path, data)
    return path


def read_timings(name: str) -> dict[str, Any]:
    """What :func:`write_timings` wrote under ``name`` ({} when absent, e.g. a fresh clone)."""
    path = TIMINGS_DIR / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else {}


def split_run_dependent(info: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``info`` as (what the same params reproduce, what changes every run): nested dicts are
    split too, so a model folder's json keeps the first and ``write_timings`` gets the second.
    """
    kept: dict[str, Any] = {}
    moved: dict[str, Any] = {}
    for key, value in info.items():
        if str(key).endswith(RUN_DEPENDENT_SUFFIXES):
            moved[key] = value
        elif isinstance(value, dict):
            kept[key], sub = split_run_dependent(value)
            if sub:
                moved[key] = sub
        else:
            kept[key] = value
    return kept, moved


# DVC metrics files are rounded at write time: float noise below this (a different BLAS path
# on another CPU) then does not show in `dvc metrics diff` (docs/configuration.md).
METRIC_DECIMALS = 3


def round_floats(data: Any, decimals: int = METRIC_DECIMALS) -> Any:
    """``data`` with every float (also numpy floats, in dicts and lists) rounded."""
    if isinstance(data, bool | int | str) or data is None:
        return data
    if isinstance(data, dict):
        return {k: round_floats(v, decimals) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [round_floats(v, decimals) for v in data]
    if isinstance(data, float) or getattr(getattr(data, "dtype", None), "kind", "") == "f":
        value = float(data)
        return round(value, decimals) if math.isfinite(value) else value
    return data


def write_metrics(path: str | os.PathLike[str], data: Any) -> None:
    """Write a DVC metrics file: JSON with floats rounded to ``METRIC_DECIMALS``."""
    write_json(path, round_floats(data))


def update_json(path: str | os.PathLike[str], updates: dict[str, Any]) -> dict[str, Any]:
    """Merge ``updates`` into the JSON object at ``path`` (top-level keys), atomically.

    Several benchmarks share one metrics file; each owns its keys and keeps the others'.
    """
    p = Path(path)
    data = json.loads(p.read_text()) if p.exists() else {}
    data.update(updates)
    write_json(p, data)
    return data


def write_text(path: str | os.PathLike[str], text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def iter_row_groups(path: str | os.PathLike[str]) -> Iterator[Any]:
    """A parquet file one row group at a time, as pandas frames: memory holds one group.

    The ingest writes each file's notes inside one row group, so per-file work can stream.
    """
    import pyarrow.parquet as pq  # deferred: most users of this module never read parquet

    pf = pq.ParquetFile(path)
    for i in range(pf.num_row_groups):
        yield pf.read_row_group(i).to_pandas()


def write_parquet(df: Any, path: str | os.PathLike[str]) -> None:
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False)


def save_figure(fig: Any, path: str | os.PathLike[str], dpi: int = 110) -> None:
    """Save a matplotlib figure atomically, with stable metadata so reruns are byte-identical."""
    with atomic_path(path) as tmp:
        fig.savefig(
            tmp,
            format=Path(path).suffix.lstrip(".") or "png",
            dpi=dpi,
            bbox_inches="tight",
            metadata={"Software": None},
        )


def _jsonable(obj: Any) -> Any:
    if hasattr(obj, "item"):
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
