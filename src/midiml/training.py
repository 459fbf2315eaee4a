"""One way to train every Lightning model of the project: ``fit_lightning``.

Generators and sequence classifiers share it, so early stopping, checkpointing, seeding,
CPU/GPU selection and MLflow logging behave the same everywhere. The ``Trainer`` and its
callbacks are built from config with ``hydra.utils.instantiate``: every key under
``params.trainer`` reaches ``lightning.Trainer`` (``+trainer.strategy=ddp``,
``trainer.devices=2``, ``+trainer.num_nodes=2`` ...); ``params.callbacks`` holds the early
stopping; ``params.cpu_threads`` the torch threads on a CPU.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import Callback, ModelCheckpoint

from midiml import tracking


@dataclass
class FitResult:
    """What a training run leaves behind, for the stage to save and the report to quote."""

    best_checkpoint: Path | None
    best_score: float | None
    history: list[dict[str, float]] = field(default_factory=list)  # one dict per val epoch
    epochs: int = 0
    run_id: str | None = None  # MLflow run id (None when tracking is disabled)
    train_seconds: float = 0.0  # wall time of trainer.fit (machine-dependent; keep out of metrics)
    world_size: int = 1  # processes that trained (DDP: devices x nodes)


def _relative(value: Any, roots: tuple[str, ...]) -> Any:
    """``value`` with every string under one of ``roots`` made relative to it (recursively)."""
    if isinstance(value, str):
        for root in roots:
            if value == root:
                return "."
            if value.startswith(root + os.sep):
                return value[len(root) + 1 :]
        return value
    if isinstance(value, dict):
        return {_relative(k, roots): _relative(v, roots) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_relative(v, roots) for v in value)
    return value


def portable_checkpoint(path: Path, ckpt_dir: Path) -> None:
    """Rewrite ``path`` with the callbacks' paths relative to ``ckpt_dir``: ModelCheckpoint
    stores its absolute folder, which is a fresh temporary one (``io.atomic_dir``) every run,
    so the same weights would otherwise hash differently in dvc.lock on every run."""
    state = torch.load(path, map_location="cpu", weights_only=False)
    roots = tuple(dict.fromkeys((str(ckpt_dir), str(ckpt_dir.resolve()))))
    state["callbacks"] = _relative(state.get("callbacks", {}), roots)
    torch.save(state, path)


class _History(Callback):
    """Keep the epoch-level metrics in memory (MLflow has them too, but may be disabled)."""

    def __init__(self) -> None:
        self.rows: list[dict[str, float]] = []

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        row = {"epoch": float(trainer.current_epoch)}
        for k, v in trainer.callback_metrics.items():
            if hasattr(v, "numel") and v.numel() == 1:
                row[k] = float(v)
        self.rows.append(row)


def effective_max_epochs(params: Any, own_max_epochs: int | None = None) -> int:
    """The epoch budget: the model's own cap, the trainer's, and ``data.max_epochs`` if set."""
    caps = [int(params.trainer.max_epochs)]
    if own_max_epochs is not None:
        caps.append(int(own_max_epochs))
    data_cap = params.get("data", {}).get("max_epochs") if hasattr(params, "get") else None
    if data_cap is not None:
        caps.append(int(data_cap))
    return max(1, min(caps))


def make_logger(params: Any, run_name: str, concern: str = "generation") -> Any:
    """Lightning's MLFlowLogger on the project's tracking store, or False when tracking is off."""
    return tracking.lightning_logger(params, concern, run_name)


def cpu_threads(params: Any) -> int:
    """Torch intra-op threads for a CPU fit: ``params.cpu_threads`` (default 1), never more
    than the cores this process may use: oversubscribed, an epoch ran ~10x slower."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(int(params.get("cpu_threads", 1) or 1), usable or 1))


def native_bf16_cpu() -> bool:
    """Whether this CPU multiplies bfloat16 in hardware (AVX512-BF16 or AMX). Elsewhere
    torch emulates bf16 on the CPU, slower than float32."""
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in probes)


def model_precision(setting: str | None, params: Any) -> str | None:
    """A model's own Lightning precision over ``params.trainer.precision`` (None: the
    trainer's). ``auto``: ``bf16-mixed`` on a CPU with native bf16 (the token Transformer
    trains 1.6x the tokens per second there), the trainer's anywhere else (``trainer=gpu``
    is bf16 already)."""
    if setting in (None, "", "trainer"):
        return None
    if setting != "auto":
        return str(setting)
    on_cpu = str(params.trainer.accelerator) == "cpu"
    return "bf16-mixed" if on_cpu and native_bf16_cpu() else None


def fit_lightning(
    module: L.LightningModule,
    data: Any,
    params: Any,
    run_name: str,
    ckpt_dir: str | Path,
    concern: str = "generation",
    own_max_epochs: int | None = None,
    monitor: str = "val_loss",
    mode: str = "min",
    extra_callbacks: list[Callback] | None = None,
    progress_bar: bool = True,
    resume: bool = False,
    patience: int | None = None,
    precision: str | None = None,
) -> FitResult:
    """Train ``module`` with a Lightning ``Trainer`` built from ``params.trainer``.

    ``data`` is a ``LightningDataModule`` or a ``(train_loader, val_loader)`` pair.
    The module must log ``monitor`` (default ``val_loss``) once per validation epoch.

    - seeds everything with ``params.seed``;
    - on ``accelerator: cpu`` uses ``params.cpu_threads`` torch threads (at most the usable
      cores; default 1);
    - the Trainer is ``instantiate(params.trainer)``: every key there reaches it (``trainer=gpu``
      gives bf16 on a GPU, ``+trainer.strategy=ddp`` several processes);
    - epochs = min(``params.trainer.max_epochs``, ``own_max_epochs``, ``params.data.max_epochs``
      when not null); early stopping is ``params.callbacks.early_stopping`` on ``monitor``
      (``patience``: the model's own, instead of the callback's);
    - ModelCheckpoint keeps the best epoch as ``<ckpt_dir>/best.ckpt``;
    - logs per-epoch curves through Lightning's ``MLFlowLogger`` into experiment
      ``<tracking.experiment_prefix>-<concern>``, run ``run_name``, on the same tracking URI as
      :func:`midiml.tracking.tracking_uri`.

    - ``precision``: the model's own Lightning precision instead of the trainer's
      (:func:`model_precision`);
    - ``resume``: also keep ``<ckpt_dir>/last.ckpt`` and continue from it when present
      (Lightning's ``ckpt_path="last"``), so a killed run picks up where it stopped.

    Returns a :class:`FitResult` (best checkpoint path, best score, per-epoch history, MLflow
    run id, wall time of the fit).
    """
    if str(params.trainer.accelerator) == "cpu":
        torch.set_num_threads(cpu_threads(params))
    L.seed_everything(int(params.seed), workers=True, verbose=False)
    ckpt_dir = Path(ckpt_dir)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    checkpoint = ModelCheckpoint(
        dirpath=ckpt_dir,
        filename="best",
        monitor=monitor,
        mode=mode,
        save_top_k=1,
        save_last=resume,
        enable_version_counter=False,
    )
    history = _History()
    own = {} if patience is None else {"patience": int(patience)}
    early = instantiate(params.callbacks.early_stopping, monitor=monitor, mode=mode, **own)
    callbacks: list[Callback] = [early, checkpoint, history, *(extra_callbacks or [])]
    logger = make_logger(params, run_name, concern)
    own_precision = {} if precision is None else {"precision": precision}
    trainer = instantiate(
        params.trainer,
        **own_precision,
        max_epochs=effective_max_epochs(params, own_max_epochs),
        logger=logger,
        callbacks=callbacks,
        enable_progress_bar=progress_bar,
        default_root_dir=str(ckpt_dir),
    )
    if isinstance(data, L.LightningDataModule):
        loaders: dict[str, Any] = {"datamodule": data}
    else:
        train_loader, val_loader = data
        loaders = {"train_dataloaders": train_loader, "val_dataloaders": val_loader}
    start = time.perf_counter()
    last = ckpt_dir / "last.ckpt"
    trainer.fit(module, **loaders, ckpt_path=str(last) if resume and last.exists() else None)
    seconds = time.perf_counter() - start
    if trainer.global_rank != 0:
        # several processes (DDP): the others end with training; rank 0 saves and reports
        raise SystemExit(0)
    best = Path(checkpoint.best_model_path) if checkpoint.best_model_path else None
    if best is not None:
        portable_checkpoint(best, ckpt_dir)
    score = checkpoint.best_model_score
    run_id = None
    if logger:
        run_id = logger.run_id
        logger.experiment.log_metric(run_id, "train_seconds", seconds)
        logger.finalize("success")
    for stray in ckpt_dir.glob("lightning_logs"):
        shutil.rmtree(stray, ignore_errors=True)
    return FitResult(
        best_checkpoint=best,
        best_score=None if score is None else float(score),
        history=history.rows,
        epochs=trainer.current_epoch,
        run_id=run_id,
        train_seconds=seconds,
        world_size=trainer.world_size,
    )
