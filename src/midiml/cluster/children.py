"""MLflow child runs, one per grid point, written by a background thread.

A grid search has hundreds of points and each MLflow run costs several SQLite commits,
so logging them inline would double the stage's time; a single writer thread overlaps it
with the clustering itself. ``close()`` waits until every child is written.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Any

from midiml import tracking

METRICS = ("silhouette", "nmi", "ami", "ari")
NOT_PARAMS = {*METRICS, "point", "n_clusters_found"}


class ChildRunLogger:
    """Callable ``logger(row)`` that queues a nested run under ``parent`` for each row."""

    def __init__(self, parent_run: Any, tags: dict[str, str] | None = None) -> None:
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient()
        self.parent_id = parent_run.info.run_id
        self.experiment_id = parent_run.info.experiment_id
        self.tags = dict(tags or {})
        self.queue: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.error: BaseException | None = None
        self.count = 0
        self.thread = threading.Thread(target=self._work, name="mlflow-children", daemon=True)
        self.thread.start()

    def __call__(self, row: dict[str, Any]) -> None:
        if self.error is not None:
            raise RuntimeError("MLflow child logging failed") from self.error
        self.queue.put(dict(row))

    def _write(self, row: dict[str, Any]) -> None:
        from mlflow.entities import Metric, Param

        name = f"{row['reducer']}/{row['method_config']}/k{row['k']}"
        child_id = tracking.child_run(
            self.client, self.experiment_id, self.parent_id, name, self.tags
        )
        now = int(time.time() * 1000)
        metrics = [
            Metric(m, float(row[m]), now, 0)
            for m in METRICS
            if row.get(m) is not None and row[m] == row[m]
        ]  # skip NaN
        params = [
            Param(k, str(v)[: tracking.MAX_PARAM_LEN])
            for k, v in row.items()
            if k not in NOT_PARAMS
        ]
        self.client.log_batch(child_id, metrics=metrics, params=params)
        self.client.set_terminated(child_id)
        self.count += 1

    def _work(self) -> None:
        while True:
            row = self.queue.get()
            if row is None:
                return
            if self.error is None:
                try:
                    self._write(row)
                except BaseException as exc:  # reported by close() on the main thread
                    self.error = exc

    def close(self) -> int:
        """Wait for the queued children; return how many were written (raise on failure)."""
        if self.thread.is_alive():
            self.queue.put(None)
            self.thread.join()
        if self.error is not None:
            raise RuntimeError("MLflow child logging failed") from self.error
        return self.count
