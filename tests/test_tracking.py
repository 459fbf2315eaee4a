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
