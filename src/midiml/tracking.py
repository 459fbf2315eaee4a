"""MLflow tracking: one experiment per concern, runs tagged with git commit and DVC experiment.

This module is the one way the project opens runs: :func:`run` (a stage's run),
:func:`evaluation_run` (a child of a training run, opened by the training run's id; the
training run itself is never re-opened, so its duration stays the fit's),
:func:`child_run` (many light children written by a client, e.g. one per grid point) and
:func:`lightning_logger` (Lightning's MLFlowLogger on the same store); :func:`serve_ui`
(``make mlflow-ui``) serves the store and gives addresses that open on the runs table.

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

# One limit on a param value's length for every run: Lightning's MLFlowLogger cuts at 250
# (MLflow itself allows more), so runs logged either way show the same values.
MAX_PARAM_LEN = 250
# Every experiment is tagged as model training. MLflow 3 UIs before 3.17 pick the experiment's
# view from this tag; 3.17's no longer reads it (see UI_QUERY) but its kind selector does.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
# MLflow 3.17's UI shows every experiment in the view of one switch at its top left ("GenAI"
# | "Model training"), read from the address's `workflowType` query, else from the browser's
# localStorage (`mlflow.workflowType_v1`, written only by clicking the switch), else GenAI
# (Overview, Traces, assistant). Addresses with this query open on the runs table in a fresh
# browser; the experiment's own tabs keep it, the experiments list's links drop it.
UI_QUERY = "workflowType=machine_learning"


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


def tracking_config(params: Any) -> Any:
    """The ``tracking`` section of params (None when params have none)."""
    return params.get("tracking") if hasattr(params, "get") else None


def enabled(tracking_cfg: Any) -> bool:
    return tracking_cfg is None or bool(tracking_cfg.get("enabled", True))


def experiment_name(tracking_cfg: Any, concern: str) -> str:
    return f"{(tracking_cfg or {}).get('experiment_prefix', 'midiml')}-{concern}"


def setup(tracking_cfg: Any, concern: str) -> str | None:
    """Point MLflow at the configured store and pick the concern's experiment; return its id."""
    import mlflow

    if not enabled(tracking_cfg):
        return None
    uri = tracking_uri(tracking_cfg)
    mlflow.set_tracking_uri(uri)
    name = experiment_name(tracking_cfg, concern)
    exp = mlflow.get_experiment_by_name(name)
    if exp is not None:
        if exp.tags.get(EXPERIMENT_KIND_TAG) != EXPERIMENT_KIND:  # stores made before the tag
            mlflow.MlflowClient().set_experiment_tag(
                exp.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND
            )
        mlflow.set_experiment(name)
        return exp.experiment_id
    artifacts = (tracking_cfg or {}).get("artifact_location")
    location = Path(artifacts).resolve().as_uri() + f"/{name}" if artifacts else None
    exp_id = mlflow.create_experiment(
        name, artifact_location=location, tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND}
    )
    mlflow.set_experiment(name)
    return exp_id


def standard_tags() -> dict[str, str]:
    return {"git_commit": git_commit(), "dvc_experiment": dvc_experiment_name()}


def param_values(params: Any) -> dict[str, str]:
    """A (nested) config as flat MLflow params, values cut to MLflow's length limit."""
    return {k: str(v)[:MAX_PARAM_LEN] for k, v in flatten(params).items()}


def log_params(params: Any) -> None:
    """Log a (nested) config as flattened MLflow params, values truncated to MLflow's limit."""
    import mlflow

    items = list(param_values(params).items())
    for i in range(0, len(items), 100):  # MLflow caps a batch at 100 params
        mlflow.log_params(dict(items[i : i + 100]))


@contextmanager
def run(params: Any, concern: str, run_name: str, nested: bool = False) -> Iterator[Any]:
    """Open an MLflow run for ``concern`` with the standard tags and flattened params.

    Yields the active run, or None when tracking is disabled in params.
    """
    import mlflow

    tracking_cfg = tracking_config(params)
    if not nested and setup(tracking_cfg, concern) is None:
        yield None
        return
    with mlflow.start_run(run_name=run_name, nested=nested, tags=standard_tags()) as active:
        log_params(params)
        yield active


def _numeric(metrics: dict[str, Any]) -> dict[str, float]:
    return {
        k: float(v)
        for k, v in metrics.items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    }


@contextmanager
def evaluation_run(
    params: Any, concern: str, parent_run_id: str | None, run_name: str
) -> Iterator[Any]:
    """A new run for evaluating a trained model, nested under its training run by id.

    The training run is never re-opened (re-opening it would stretch its duration to the
    evaluation's end). When the parent is unknown or gone (a fresh ``mlflow.db``), the
    evaluation is a top-level run of the concern. Yields None when tracking is off.
    """
    import mlflow

    tracking_cfg = tracking_config(params)
    if setup(tracking_cfg, concern) is None:
        yield None
        return
    parent = None
    if parent_run_id:
        try:
            parent = mlflow.MlflowClient().get_run(parent_run_id)
        except Exception:  # noqa: BLE001 - the run may live in another tracking store
            parent = None
        if parent is not None and parent.info.lifecycle_stage != "active":
            parent = None
    tags = {**standard_tags(), "role": "evaluation"}
    with mlflow.start_run(
        run_name=run_name,
        experiment_id=parent.info.experiment_id if parent else None,
        parent_run_id=parent.info.run_id if parent else None,
        tags=tags,
    ) as active:
        yield active


def log_metrics(metrics: dict[str, Any]) -> None:
    """Log the numeric values of ``metrics`` (others are skipped) to the active run."""
    import mlflow

    mlflow.log_metrics(_numeric(metrics))


def child_run(
    client: Any, experiment_id: str, parent_run_id: str, run_name: str, tags: dict[str, str]
) -> str:
    """Create a child run under ``parent_run_id`` through ``client``; return its id.

    For many small runs (one per grid point) written by a client without the fluent
    API's active-run stack; the caller logs with ``client.log_batch`` and terminates it.
    """
    tags = {"mlflow.parentRunId": parent_run_id, **tags}
    return client.create_run(experiment_id, run_name=run_name, tags=tags).info.run_id


def lightning_logger(params: Any, concern: str, run_name: str) -> Any:
    """Lightning's MLFlowLogger on the project's store and experiment (False: tracking off)."""
    tracking_cfg = tracking_config(params)
    if setup(tracking_cfg, concern) is None:  # creates the experiment with its tags
        return False
    from lightning.pytorch.loggers import MLFlowLogger

    logger = MLFlowLogger(
        experiment_name=experiment_name(tracking_cfg, concern),
        run_name=run_name,
        tracking_uri=tracking_uri(tracking_cfg),
        tags=standard_tags(),
        log_model=False,
    )
    logger.log_hyperparams(param_values(params))
    return logger


def log_evaluation(
    params: Any,
    concern: str,
    name: str,
    parent_run_id: str | None,
    metrics: dict[str, Any],
    files: list[Path] | None = None,
) -> None:
    """Test metrics and files (samples, figures) as an evaluation run under the training run."""
    import mlflow

    with evaluation_run(params, concern, parent_run_id, f"{name}/evaluation") as active:
        if active is None:
            return
        log_metrics(metrics)
        for f in files or []:
            mlflow.log_artifact(str(f), artifact_path="samples")


def ui_url(base_url: str, experiment_id: str | None = None) -> str:
    """The UI address of an experiment's runs beside their metric charts (the runs table
    itself shows no metric column until one is added), or of the experiments list."""
    if experiment_id is None:
        return f"{base_url.rstrip('/')}/#/experiments?{UI_QUERY}"
    runs = f"{base_url.rstrip('/')}/#/experiments/{experiment_id}/runs"
    return f"{runs}?{UI_QUERY}&compareRunsMode=CHART"


def ui_addresses(base_url: str, uri: str | None = None) -> dict[str, str]:
    """Experiment name -> address of its runs table, for every experiment in the store."""
    from mlflow import MlflowClient

    experiments = MlflowClient(uri or tracking_uri()).search_experiments()
    return {e.name: ui_url(base_url, e.experiment_id) for e in experiments}


def serve_ui(host: str = "127.0.0.1", port: int = 5000, open_browser: bool = True) -> int:
    """``mlflow ui`` on the project's store; once it answers, print each experiment's runs
    address (and open the first in a browser, where there is one). Returns its exit code."""
    import signal
    import sys
    import time
    import urllib.request
    import webbrowser

    base, uri = f"http://{host}:{port}", tracking_uri()
    cmd = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri]
    cmd += ["--host", host, "--port", str(port)]
    server = subprocess.Popen(cmd)
    # `kill` of this process stops the server too (the finally below runs on SystemExit)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        for _ in range(240):  # the server takes seconds to a minute to start on a busy machine
            if server.poll() is not None:
                return server.returncode
            try:
                urllib.request.urlopen(base, timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        urls = {n: u for n, u in ui_addresses(base, uri).items() if n != "Default"}
        print(f"\nMLflow UI: each experiment's runs and metric charts ({base} itself opens")
        print('MLflow\'s GenAI view; click "Model training" at its top left once, and the')
        print("browser remembers it):")
        for name, url in sorted(urls.items()):
            print(f"  {name}: {url}")
        sys.stdout.flush()
        if open_browser and urls:
            webbrowser.open(next(iter(sorted(urls.items())))[1])
        return server.wait()
    except KeyboardInterrupt:
        return 130
    finally:
        if server.poll() is None:
            server.terminate()
            server.wait()


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description="serve the MLflow UI on the project's store")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=5000)
    ap.add_argument("--no-browser", action="store_true", help="only print the addresses")
    args = ap.parse_args()
    raise SystemExit(serve_ui(args.host, args.port, not args.no_browser))
