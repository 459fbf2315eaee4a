"""MLflow tracking: one experiment per concern, runs tagged with git commit and DVC experiment.

SQLite (``sqlite:///mlflow.db``) is the default backend; ``MLFLOW_TRACKING_URI`` wins,
so a team can point every stage at a shared server without touching params.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from midiml.config import flatten

MAX_PARAM_LEN = 500


def tracking_uri(cfg: Any | None = None) -> str:
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    if cfg is not None and cfg.get("tracking_uri"):
        return str(cfg["tracking_uri"])
    return "sqlite:///mlflow.db"


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=False
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def dvc_experiment_name() -> str:
    """DVC sets DVC_EXP_NAME inside ``dvc exp run``; plain ``dvc repro`` has none."""
    return os.environ.get("DVC_EXP_NAME", "workspace")


def setup(tracking_cfg: Any, concern: str) -> str | None:
    """Point MLflow at the configured store and pick the concern's experiment; return its id."""
    import mlflow

    if tracking_cfg is not None and not tracking_cfg.get("enabled", True):
        return None
    uri = tracking_uri(tracking_cfg)
    mlflow.set_tracking_uri(uri)
    prefix = (tracking_cfg or {}).get("experiment_prefix", "midiml")
    name = f"{prefix}-{concern}"
    exp = mlflow.get_experiment_by_name(name)
    if exp is not None:
        mlflow.set_experiment(name)
        return exp.experiment_id
    artifacts = (tracking_cfg or {}).get("artifact_location")
    location = Path(artifacts).resolve().as_uri() + f"/{name}" if artifacts else None
    exp_id = mlflow.create_experiment(name, artifact_location=location)
    mlflow.set_experiment(name)
    return exp_id


def standard_tags() -> dict[str, str]:
    return {"git_commit": git_commit(), "dvc_experiment": dvc_experiment_name()}


def log_params(params: Any) -> None:
    """Log a (nested) config as flattened MLflow params, values truncated to MLflow's limit."""
    import mlflow

    flat = {k: str(v)[:MAX_PARAM_LEN] for k, v in flatten(params).items()}
    items = list(flat.items())
    for i in range(0, len(items), 100):  # MLflow caps a batch at 100 params
        mlflow.log_params(dict(items[i : i + 100]))


@contextmanager
def run(params: Any, concern: str, run_name: str, nested: bool = False) -> Iterator[Any]:
    """Open an MLflow run for ``concern`` with the standard tags and flattened params.

    Yields the active run, or None when tracking is disabled in params.
    """
    import mlflow

    tracking_cfg = params.get("tracking") if hasattr(params, "get") else None
    if not nested and setup(tracking_cfg, concern) is None:
        yield None
        return
    with mlflow.start_run(run_name=run_name, nested=nested, tags=standard_tags()) as active:
        log_params(params)
        yield active


def log_evaluation(
    params: Any,
    concern: str,
    name: str,
    parent_run_id: str | None,
    metrics: dict[str, Any],
    files: list[Path] | None = None,
) -> None:
    """Log test metrics and samples as a child run of the model's training run.

    A new child run, not the training run re-opened: re-opening would stretch the training
    run's duration to the time of evaluation.
    """
    import mlflow

    if setup(params.get("tracking"), concern) is None:
        return
    tags = standard_tags()
    if parent_run_id:
        tags["mlflow.parentRunId"] = parent_run_id
    with mlflow.start_run(run_name=f"{name}-evaluation", tags=tags):
        numbers = {
            k: float(v)
            for k, v in metrics.items()
            if isinstance(v, int | float) and not isinstance(v, bool)
        }
        mlflow.log_metrics(numbers)
        for f in files or []:
            mlflow.log_artifact(str(f), artifact_path="samples")
