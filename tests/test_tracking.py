"""MLflow runs land in a real SQLite store with tags, flattened params and metrics."""

from __future__ import annotations

import mlflow
from omegaconf import OmegaConf

from midiml import tracking


def test_run_logs_to_sqlite_with_tags_and_params(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("DVC_EXP_NAME", "exp-test")
    params = OmegaConf.create(
        {
            "data": {"name": "small", "seed": 1},
            "tracking": {
                "tracking_uri": "sqlite:///mlflow.db",
                "artifact_location": "mlartifacts",
                "experiment_prefix": "t",
                "enabled": True,
            },
        }
    )
    with tracking.run(params, "data", "ingest") as run:
        mlflow.log_metric("lofi.files", 12)
    assert (tmp_path / "mlflow.db").exists()
    client = mlflow.tracking.MlflowClient("sqlite:///mlflow.db")
    got = client.get_run(run.info.run_id)
    assert got.data.params["data.name"] == "small"
    assert got.data.metrics["lofi.files"] == 12
    assert got.data.tags["dvc_experiment"] == "exp-test"
    assert "git_commit" in got.data.tags
    assert client.get_experiment(got.info.experiment_id).name == "t-data"


def test_env_uri_wins(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracking.example:5000")
    assert (
        tracking.tracking_uri({"tracking_uri": "sqlite:///x.db"}) == "http://tracking.example:5000"
    )


def test_disabled_tracking_yields_none(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    params = OmegaConf.create({"tracking": {"enabled": False}})
    with tracking.run(params, "data", "x") as run:
        assert run is None
    assert not (tmp_path / "mlflow.db").exists()


def _params(tmp_path):
    return OmegaConf.create(
        {
            "seed": 0,
            "tracking": {
                "tracking_uri": f"sqlite:///{tmp_path}/mlflow.db",
                "artifact_location": str(tmp_path / "mlartifacts"),
                "experiment_prefix": "t",
                "enabled": True,
            },
        }
    )


def test_experiments_open_as_model_training_in_the_ui(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    params = _params(tmp_path)
    with tracking.run(params, "clustering", "grid"):
        pass
    logger = tracking.lightning_logger(params, "generation", "ffnn")
    client = mlflow.tracking.MlflowClient(params.tracking.tracking_uri)
    for name in ("t-clustering", "t-generation"):
        exp = client.get_experiment_by_name(name)
        assert exp.tags[tracking.EXPERIMENT_KIND_TAG] == "custom_model_development"
    assert logger.experiment_id == client.get_experiment_by_name("t-generation").experiment_id


def test_evaluation_is_a_child_run_and_leaves_the_training_run_closed(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    params = _params(tmp_path)
    with tracking.run(params, "generation", "markov") as train:
        mlflow.log_metric("train_seconds", 0.1)
    client = mlflow.tracking.MlflowClient(params.tracking.tracking_uri)
    before = client.get_run(train.info.run_id).info
    with tracking.evaluation_run(params, "generation", train.info.run_id, "markov/eval") as ev:
        tracking.log_metrics({"bits_per_note": 3.25, "name": "skipped", "flag": True})
    after = client.get_run(train.info.run_id).info
    assert (after.start_time, after.end_time, after.status) == (
        before.start_time,
        before.end_time,
        "FINISHED",
    )
    child = client.get_run(ev.info.run_id)
    assert child.data.tags["mlflow.parentRunId"] == train.info.run_id
    assert child.data.metrics == {"bits_per_note": 3.25}
    # a parent from another store (or a fresh mlflow.db) gives a top-level evaluation run
    with tracking.evaluation_run(params, "generation", "0" * 32, "lost/eval") as ev2:
        pass
    assert "mlflow.parentRunId" not in client.get_run(ev2.info.run_id).data.tags


def test_ui_addresses_open_each_experiment_on_its_runs_table(tmp_path, monkeypatch):
    """MLflow 3.17 picks the view from the address's workflowType (the experiment tag no
    longer decides): every address `make mlflow-ui` prints asks for the runs table."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    params = _params(tmp_path)
    for concern in ("generation", "clustering"):
        with tracking.run(params, concern, "r"):
            mlflow.log_metric("val_loss", 1.0)
    urls = tracking.ui_addresses("http://127.0.0.1:5000/", params.tracking.tracking_uri)
    client = mlflow.tracking.MlflowClient(params.tracking.tracking_uri)
    for concern in ("generation", "clustering"):
        exp = client.get_experiment_by_name(f"t-{concern}")
        assert urls[f"t-{concern}"] == (
            f"http://127.0.0.1:5000/#/experiments/{exp.experiment_id}/runs"
            "?workflowType=machine_learning&compareRunsMode=CHART"
        )
    assert tracking.ui_url("http://h:1").endswith("/#/experiments?workflowType=machine_learning")
