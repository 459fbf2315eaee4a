"""Train any of the five generators by name from ``params.model``; save it under ``models/``.

Names: ``markov``, ``forest`` (fitted directly, logged to MLflow with ``midiml.tracking``)
and ``ffnn``, ``lstm_tonedeaf``, ``note_lstm`` (Lightning, through ``fit_lightning``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import OmegaConf

from midiml.generate.base import Generator
from midiml.represent.windows import PITCH, EventData

NAMES = ("markov", "forest", "ffnn", "lstm_tonedeaf", "note_lstm")
NEURAL = ("ffnn", "lstm_tonedeaf", "note_lstm")
_ARCH_KEYS = {"max_epochs", "windows_per_epoch", "loss"}


def _cfg(node: Any) -> dict[str, Any]:
    return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else dict(node)


def build_module(name: str, cfg: dict[str, Any], loss: dict[str, Any] | None = None) -> Any:
    """The LightningModule of a neural generator from its config (and ffnn's ``model.loss``)."""
    arch = {k: v for k, v in cfg.items() if k not in _ARCH_KEYS}
    if name == "ffnn":
        from midiml.generate.ffnn import FFNNModule

        return FFNNModule(**arch, **(loss or {}))
    if name == "lstm_tonedeaf":
        from midiml.generate.lstm import ToneDeafLSTM

        return ToneDeafLSTM(**arch, **cfg.get("loss", {}))
    if name == "note_lstm":
        from midiml.generate.lstm import NoteLSTM

        return NoteLSTM(**arch)
    raise ValueError(f"unknown neural generator {name!r}; choose from {NEURAL}")


def train_generator(
    name: str,
    params: Any,
    data: EventData,
    model_dir: str | Path,
    run_name: str | None = None,
    cfg: dict[str, Any] | None = None,
    loss: dict[str, Any] | None = None,
    progress_bar: bool = True,
) -> dict[str, Any]:
    """Fit generator ``name`` on the training windows, save it into ``model_dir``.

    ``cfg``/``loss`` override ``params.model.<name>`` / ``params.model.loss`` (the ablation
    uses this). Returns {"train_seconds", "epochs", "history", "run_id"}.
    """
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    cfg = cfg if cfg is not None else _cfg(params.model[name])
    run_name = run_name or name
    if name in ("markov", "forest"):
        return _train_classic(name, params, data, model_dir, run_name, cfg)
    if name not in NEURAL:
        raise ValueError(f"unknown generator {name!r}; choose from {NAMES}")
    from midiml.generate.neural import TorchGenerator, window_loaders
    from midiml.training import fit_lightning

    if name == "ffnn" and loss is None:
        loss = _cfg(params.model.loss)
    import lightning as L

    # seed before the weights are drawn: torch's own start seed differs in every process
    L.seed_everything(int(params.seed), workers=True, verbose=False)
    module = build_module(name, cfg, loss)
    loaders = window_loaders(
        data,
        int(cfg["n_in"]),
        int(params.trainer.batch_size),
        cfg.get("windows_per_epoch"),
        int(params.seed),
        int(params.trainer.num_workers),
    )
    result = fit_lightning(
        module,
        loaders,
        params,
        run_name,
        model_dir,
        own_max_epochs=cfg.get("max_epochs"),
        progress_bar=progress_bar,
    )
    if result.best_checkpoint is None:
        raise RuntimeError(f"{name}: training produced no checkpoint")
    best = type(module).load_from_checkpoint(
        result.best_checkpoint, map_location="cpu", weights_only=False
    )
    TorchGenerator(best, name).save(model_dir, checkpoint=result.best_checkpoint.name)
    return {
        "train_seconds": result.train_seconds,
        "epochs": result.epochs,
        "history": result.history,
        "run_id": result.run_id,
    }


def _train_classic(
    name: str, params: Any, data: EventData, model_dir: Path, run_name: str, cfg: dict[str, Any]
) -> dict[str, Any]:
    import mlflow

    from midiml import tracking

    start = time.perf_counter()
    gen: Generator
    if name == "markov":
        from midiml.generate.markov import MarkovGenerator

        gen = MarkovGenerator(order=int(cfg["order"])).fit(
            [data.song(s) for s in data.songs("train")]
        )
    else:
        from midiml.generate.forest import ForestGenerator
        from midiml.represent.windows import spaced

        starts = data.starts["train"]
        starts = starts[spaced(len(starts), cfg.get("max_train_windows"))]
        x, y = data.windows("train", starts)
        opts = {k: v for k, v in cfg.items() if k != "max_train_windows"}
        gen = ForestGenerator(**opts, seed=int(params.seed)).fit(x, y[:, 0, PITCH])
    seconds = time.perf_counter() - start
    gen.save(model_dir)
    run_id = None
    with tracking.run(params, "generation", run_name) as active:
        if active is not None:
            mlflow.log_metric("train_seconds", seconds)
            run_id = active.info.run_id
    return {"train_seconds": seconds, "epochs": 1, "history": [], "run_id": run_id}


def evaluation_windows(data: EventData, split: str = "test") -> tuple[np.ndarray, np.ndarray]:
    """(windows (W, n_in, 4), next pitch (W,)) of a split: every model sees the same ones."""
    x, y = data.windows(split)
    return x, y[:, 0, PITCH].astype(np.int64)
