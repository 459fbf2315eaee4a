"""Train any generator from its config node ``model.generators.<name>``; save it under ``models/``.

The node's ``module`` is built with ``hydra.utils.instantiate``. A :class:`Generator` (Markov,
forest) is fitted directly with ``fit_data``; a ``LightningModule`` is trained with
:func:`midiml.training.fit_lightning` on the node's ``datamodule``. Either way the saved folder
records the ``module`` config, so :func:`midiml.generate.base.load_generator` needs no names.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import lightning as L
import mlflow
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from midiml import tracking
from midiml.generate.base import Generator, write_meta
from midiml.represent.windows import EventData
from midiml.training import fit_lightning


def generator_names(params: Any) -> list[str]:
    """The configured generators, in config order (what dvc.yaml's foreach trains)."""
    return list(params.model.generators.keys())


def is_neural(spec: Any) -> bool:
    """A generator trained with Lightning has a data module; the others fit directly."""
    return spec.get("datamodule") is not None


def train_generator(
    name: str,
    spec: DictConfig,
    params: Any,
    data: EventData,
    model_dir: str | Path,
    run_name: str | None = None,
    progress_bar: bool = True,
) -> dict[str, Any]:
    """Fit generator ``name`` built from ``spec`` on the training windows into ``model_dir``.

    Returns {"train_seconds", "epochs", "history", "run_id"}.
    """
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    run_name = run_name or name
    module_cfg = OmegaConf.to_container(spec.module, resolve=True)
    # seed before the weights are drawn: torch's own start seed differs in every process
    L.seed_everything(int(params.seed), workers=True, verbose=False)
    model = instantiate(spec.module, _convert_="all")
    if isinstance(model, Generator):
        info = _fit_direct(model, params, data, model_dir, run_name)
        write_meta(model_dir, name, module_cfg, n_in=model.n_in)
        return info
    # _partial_: runtime objects (the data) are passed to the built class, not through OmegaConf
    datamodule = instantiate(spec.datamodule, _partial_=True)(
        data=data,
        batch_size=int(params.loader.batch_size),
        num_workers=int(params.loader.num_workers),
        seed=int(params.seed),
    )
    result = fit_lightning(
        model,
        datamodule,
        params,
        run_name,
        model_dir,
        own_max_epochs=spec.get("max_epochs"),
        progress_bar=progress_bar,
    )
    if result.best_checkpoint is None:
        raise RuntimeError(f"{name}: training produced no checkpoint")
    write_meta(
        model_dir,
        name,
        module_cfg,
        n_in=int(model.hparams.n_in),
        checkpoint=result.best_checkpoint.name,
    )
    return {
        "train_seconds": result.train_seconds,
        "epochs": result.epochs,
        "history": result.history,
        "run_id": result.run_id,
        "world_size": result.world_size,
    }


def _fit_direct(
    gen: Generator, params: Any, data: EventData, model_dir: Path, run_name: str
) -> dict[str, Any]:
    start = time.perf_counter()
    gen.fit_data(data)
    seconds = time.perf_counter() - start
    gen.save(model_dir)
    run_id = None
    with tracking.run(params, "generation", run_name) as active:
        if active is not None:
            mlflow.log_metric("train_seconds", seconds)
            run_id = active.info.run_id
    return {"train_seconds": seconds, "epochs": 1, "history": [], "run_id": run_id, "world_size": 1}
