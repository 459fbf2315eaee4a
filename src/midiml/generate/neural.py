"""What the neural generators share: window loaders, a Lightning base module, loading.

Batches are ``(windows (B, n_in, 4), next_event (B, 4))`` drawn from the concatenated event
array by start index (no copy of the corpus per window). Each epoch draws a fresh random
subset of ``windows_per_epoch`` training windows, which bounds CPU time on long pieces.
"""

from __future__ import annotations

import importlib
import math
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, SequentialSampler

from midiml.generate.base import Generator, read_meta, smooth, write_meta
from midiml.represent.windows import DELTA, DURATION, PITCH, VELOCITY, EventData

LOG2 = math.log(2.0)


class WindowBatches(Dataset):
    """Indexable by a list of window numbers; returns a whole batch at once."""

    def __init__(self, events: np.ndarray, starts: np.ndarray, n_in: int) -> None:
        self.events = torch.as_tensor(np.asarray(events, dtype=np.float32))
        self.starts = torch.as_tensor(np.asarray(starts, dtype=np.int64))
        self.offsets = torch.arange(n_in + 1)

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, idx: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        rows = self.starts[torch.as_tensor(idx)][:, None] + self.offsets[None, :]
        block = self.events[rows]
        return block[:, :-1], block[:, -1]


def window_loaders(
    data: EventData,
    n_in: int,
    batch_size: int,
    windows_per_epoch: int | None,
    seed: int,
    num_workers: int = 0,
) -> tuple[DataLoader, DataLoader]:
    """(train, val) loaders over the last ``n_in`` events before each window's target.

    Windows were cut with ``data.n_in`` events of context; a model using fewer takes the
    most recent ``n_in`` of them (its starts shift right by ``data.n_in - n_in``).
    """
    shift = data.n_in - n_in
    if shift < 0:
        raise ValueError(f"model context {n_in} exceeds the window size {data.n_in}")
    loaders = []
    for split in ("train", "val"):
        ds = WindowBatches(data.events, data.starts[split] + shift, n_in)
        if split == "train":
            n = len(ds) if not windows_per_epoch else min(int(windows_per_epoch), len(ds))
            gen = torch.Generator().manual_seed(int(seed))
            base = RandomSampler(range(len(ds)), replacement=False, num_samples=n, generator=gen)
        else:
            base = SequentialSampler(range(len(ds)))
        sampler = BatchSampler(base, batch_size=int(batch_size), drop_last=False)
        loaders.append(
            DataLoader(
                ds,
                sampler=sampler,
                batch_size=None,
                num_workers=int(num_workers),
                persistent_workers=int(num_workers) > 0,
            )
        )
    return loaders[0], loaders[1]


def timing_features(windows: torch.Tensor) -> torch.Tensor:
    """(B, n, 4) events -> (B, n, 3): velocity / 127, log1p(10 * delta), log1p(10 * duration)."""
    return torch.stack(
        [
            windows[..., VELOCITY] / 127.0,
            torch.log1p(10.0 * windows[..., DELTA].clamp_min(0)),
            torch.log1p(10.0 * windows[..., DURATION].clamp_min(0)),
        ],
        dim=-1,
    )


class NextNoteModule(L.LightningModule):
    """Base: subclasses give ``pitch_log_probs`` and ``loss``; this logs and optimises."""

    def pitch_log_probs(self, windows: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def loss(
        self, windows: torch.Tensor, target: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        raise NotImplementedError

    def predict_duration(self, windows: torch.Tensor) -> torch.Tensor | None:
        return None

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        total, parts = self.loss(*batch)
        self.log("train_loss", total, on_step=False, on_epoch=True, prog_bar=True)
        for k, v in parts.items():
            self.log(f"train_{k}", v, on_step=False, on_epoch=True)
        return total

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        windows, target = batch
        total, parts = self.loss(windows, target)
        logp = self.pitch_log_probs(windows).float()
        picked = logp.gather(1, target[:, PITCH].long().clamp(0, 127)[:, None])
        nll = -picked.clamp_min(math.log(1e-6)).mean()  # as the 1e-6 floor of evaluation
        self.log("val_loss", total, on_step=False, on_epoch=True, prog_bar=True)
        self.log("val_bits", nll / LOG2, on_step=False, on_epoch=True, prog_bar=True)
        for k, v in parts.items():
            self.log(f"val_{k}", v, on_step=False, on_epoch=True)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(
            self.parameters(),
            lr=float(self.hparams.lr),
            weight_decay=float(self.hparams.get("weight_decay", 0.0)),
        )


class TorchGenerator(Generator):
    """A trained ``NextNoteModule`` behind the numpy ``Generator`` interface (CPU inference)."""

    def __init__(self, module: NextNoteModule, kind: str) -> None:
        self.module = module.eval().cpu().float()
        self.kind = kind
        self.n_in = int(module.hparams.n_in)

    def _tensor(self, windows: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.asarray(windows, dtype=np.float32)[:, -self.n_in :])

    @torch.no_grad()
    def next_pitch_proba(self, windows: np.ndarray) -> np.ndarray:
        out = []
        w = self._tensor(windows)
        for i in range(0, len(w), 4096):
            out.append(self.module.pitch_log_probs(w[i : i + 4096]).float().exp().numpy())
        return smooth(np.concatenate(out) if out else np.zeros((0, 128)))

    @torch.no_grad()
    def next_duration(self, windows: np.ndarray) -> np.ndarray | None:
        d = self.module.predict_duration(self._tensor(windows))
        return None if d is None else d.float().numpy()

    def save(self, model_dir: Path, checkpoint: str = "best.ckpt") -> None:
        cls = type(self.module)
        write_meta(
            model_dir,
            self.kind,
            n_in=self.n_in,
            checkpoint=checkpoint,
            module=f"{cls.__module__}:{cls.__name__}",
        )

    @classmethod
    def load(cls, model_dir: Path) -> TorchGenerator:
        meta = read_meta(model_dir)
        mod_name, cls_name = meta["module"].split(":")
        module_cls = getattr(importlib.import_module(mod_name), cls_name)
        module = module_cls.load_from_checkpoint(
            Path(model_dir) / meta["checkpoint"], map_location="cpu", weights_only=False
        )
        return cls(module, meta["kind"])
