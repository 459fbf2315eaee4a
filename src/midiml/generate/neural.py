"""What the neural generators share: a Lightning base module and its numpy wrapper.

Batches (from ``datamodules.WindowDataModule``) are ``(windows (B, n_in, 4), next_event (B, 4))``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch

from midiml.generate.base import Generator, read_meta, smooth
from midiml.represent.windows import DELTA, DURATION, PITCH, VELOCITY

LOG2 = math.log(2.0)


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
        self.log("train_loss", total, on_step=False, on_epoch=True, prog_bar=True, sync_dist=True)
        for k, v in parts.items():
            self.log(f"train_{k}", v, on_step=False, on_epoch=True, sync_dist=True)
        return total

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        windows, target = batch
        total, parts = self.loss(windows, target)
        logp = self.pitch_log_probs(windows).float()
        picked = logp.gather(1, target[:, PITCH].long().clamp(0, 127)[:, None])
        nll = -picked.clamp_min(math.log(1e-6)).mean()  # as the 1e-6 floor of evaluation
        self.log("val_loss", total, on_step=False, on_epoch=True, prog_bar=True, sync_dist=True)
        self.log(
            "val_bits", nll / LOG2, on_step=False, on_epoch=True, prog_bar=True, sync_dist=True
        )
        for k, v in parts.items():
            self.log(f"val_{k}", v, on_step=False, on_epoch=True, sync_dist=True)

    @classmethod
    def load_saved(cls, model_dir: Path) -> TorchGenerator:
        """The best checkpoint a training stage saved, behind the numpy interface."""
        meta = read_meta(model_dir)
        module = cls.load_from_checkpoint(
            Path(model_dir) / meta["checkpoint"], map_location="cpu", weights_only=False
        )
        return TorchGenerator(module)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(
            self.parameters(),
            lr=float(self.hparams.lr),
            weight_decay=float(self.hparams.get("weight_decay", 0.0)),
        )


class TorchGenerator(Generator):
    """A trained ``NextNoteModule`` behind the numpy ``Generator`` interface (CPU inference)."""

    def __init__(self, module: NextNoteModule) -> None:
        self.module = module.eval().cpu().float()
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

    def save(self, model_dir: Path) -> None:
        """Nothing beyond the checkpoint Lightning wrote (``meta.json`` names it)."""
