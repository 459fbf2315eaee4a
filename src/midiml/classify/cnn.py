"""A small CNN over piano-roll crops, in the spirit of the seed's Chopin-vs-other CNN.

The seed classified piano-roll images; here each song gives many fixed-size crops
(pitch × time), the CNN learns on random crops of the training songs (optionally sampled
so that every class is seen equally often), early-stops on the validation songs' crops,
and a song's prediction is the mean of the class probabilities of evenly spaced crops.
Convolutions over pitch make a motif look the same in any register. Training goes through
the project's ``fit_lightning`` (Trainer from ``params.trainer``, MLflow, checkpoints); the
module and its data module are built from ``classifier.cnn.module`` / ``.datamodule``.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from hydra.utils import instantiate
from scipy import sparse
from torch import nn
from torch.utils.data import DataLoader, Dataset, RandomSampler, WeightedRandomSampler
from torchmetrics.classification import MulticlassF1Score

from midiml.represent.pianoroll import RollSpec, crop_starts, crops
from midiml.training import fit_lightning


class CropDataset(Dataset):
    """Item i is a crop of song ``i % n_songs``: random start when training, fixed otherwise."""

    def __init__(
        self,
        rolls: list[sparse.spmatrix],
        labels: np.ndarray | None,
        length: int,
        starts: list[np.ndarray] | None = None,
        per_song: int = 1,
    ) -> None:
        self.rolls = [sparse.csc_matrix(r) for r in rolls]  # CSC: cheap column slices
        self.labels = labels
        self.length = length
        self.per_song = per_song
        self.fixed = None
        if starts is not None:  # evaluation: every (song, start) pair once
            self.fixed = [(i, int(s)) for i, st in enumerate(starts) for s in st]

    def __len__(self) -> int:
        return len(self.fixed) if self.fixed is not None else len(self.rolls) * self.per_song

    def __getitem__(self, idx: int) -> tuple[torch.Tensor, int]:
        if self.fixed is not None:
            song, start = self.fixed[idx]
        else:
            song = idx % len(self.rolls)
            last = self.rolls[song].shape[1] - self.length
            start = int(torch.randint(0, last + 1, (1,)).item()) if last > 0 else 0
        x = crops(self.rolls[song], self.length, np.array([start]))[0]
        y = -1 if self.labels is None else int(self.labels[song])
        return torch.from_numpy(x).unsqueeze(0), y


class CropDataModule(L.LightningDataModule):
    """Random crops of the training songs (class-balanced when ``balanced``), fixed evenly
    spaced crops of the validation songs."""

    def __init__(
        self,
        rolls: list[sparse.spmatrix],
        labels: np.ndarray,
        val_rolls: list[sparse.spmatrix],
        val_labels: np.ndarray,
        crop_steps: int = 64,
        train_crops_per_song: int = 8,
        eval_crops_per_song: int = 8,
        balanced: bool = True,
        batch_size: int = 64,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        self.length, self.per_song = int(crop_steps), int(train_crops_per_song)
        self.train_ds = CropDataset(rolls, labels, self.length, per_song=self.per_song)
        starts = [crop_starts(r.shape[1], self.length, int(eval_crops_per_song)) for r in val_rolls]
        self.val_ds = CropDataset(val_rolls, val_labels, self.length, starts=starts)
        self.weights = None
        if balanced:
            counts = np.bincount(labels).astype(float)
            self.weights = np.tile(1.0 / counts[labels], self.per_song)
        self.batch_size, self.num_workers = int(batch_size), int(num_workers)

    def _loader(self, ds: Dataset, sampler: Any) -> DataLoader:
        return DataLoader(
            ds,
            batch_size=self.batch_size,
            sampler=sampler,
            shuffle=False,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        if self.weights is not None:
            weights = torch.as_tensor(self.weights, dtype=torch.double)
            return self._loader(self.train_ds, WeightedRandomSampler(weights, len(self.train_ds)))
        return self._loader(self.train_ds, RandomSampler(self.train_ds))

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_ds, None)


class PianoRollCNN(L.LightningModule):
    """Conv(3×3, first strided)-BN-ReLU-MaxPool blocks, global average pool, dropout, linear."""

    def __init__(
        self,
        *,
        n_classes: int,
        channels: list[int] | tuple[int, ...] = (8, 16, 32),
        dropout: float = 0.3,
        lr: float = 2e-3,
        weight_decay: float = 1e-4,
        classes: list[str] | None = None,
        roll: dict | None = None,
        crop_steps: int = 64,
        eval_crops_per_song: int = 8,
        stride: int = 2,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        layers: list[nn.Module] = []
        c_in = 1
        for i, c in enumerate(channels):  # a strided first conv keeps a CPU epoch to seconds
            layers += [
                nn.Conv2d(c_in, c, 3, padding=1, stride=stride if i == 0 else 1),
                nn.BatchNorm2d(c),
                nn.ReLU(),
                nn.MaxPool2d(2),
            ]
            c_in = c
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(c_in, n_classes)
        )
        self.loss = nn.CrossEntropyLoss()
        # macro-F1 over validation crops: what early stopping watches on unbalanced tasks
        self.val_f1 = MulticlassF1Score(num_classes=n_classes, average="macro")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def _step(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str) -> torch.Tensor:
        x, y = batch
        logits = self(x)
        loss = self.loss(logits, y)
        acc = (logits.argmax(1) == y).float().mean()
        self.log(f"{stage}_loss", loss, prog_bar=True, on_epoch=True, on_step=False)
        self.log(f"{stage}_acc", acc, prog_bar=True, on_epoch=True, on_step=False)
        return loss

    def training_step(self, batch, batch_idx):  # noqa: D102 (Lightning hook)
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx):  # noqa: D102 (Lightning hook)
        self._step(batch, "val")
        x, y = batch
        self.val_f1.update(self(x).argmax(1), y)
        self.log("val_f1", self.val_f1, prog_bar=True, on_epoch=True, on_step=False)

    def configure_optimizers(self):  # noqa: D102 (Lightning hook)
        return torch.optim.AdamW(
            self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay
        )


class PianoRollCNNClassifier:
    """scikit-learn-style wrapper: ``fit(rolls, y, val_rolls, val_y)``, ``predict_proba(rolls)``.

    ``rolls`` are sparse (n_pitches × T) matrices from :func:`midiml.represent.pianoroll
    .piano_roll` built with the same :class:`RollSpec` as ``cfg.roll``.
    """

    def __init__(self, cfg: Any, params: Any, run_name: str = "cnn") -> None:
        self.cfg, self.params, self.run_name = cfg, params, run_name
        self.module: PianoRollCNN | None = None
        self.classes_: list[str] = []
        self.fit_result: Any = None

    def fit(
        self,
        rolls: list[sparse.spmatrix],
        y: np.ndarray,
        val_rolls: list[sparse.spmatrix],
        val_y: np.ndarray,
        ckpt_dir: str | Path,
    ) -> PianoRollCNNClassifier:
        cfg = self.cfg
        self.classes_ = sorted({str(v) for v in y})
        index = {c: i for i, c in enumerate(self.classes_)}
        yi = np.array([index[str(v)] for v in y])
        unseen = sorted({str(v) for v in val_y} - set(self.classes_))
        if unseen:
            raise ValueError(f"validation classes not in training: {unseen}")
        vi = np.array([index[str(v)] for v in val_y])
        datamodule = instantiate(cfg.datamodule, _partial_=True)(
            rolls=rolls,
            labels=yi,
            val_rolls=val_rolls,
            val_labels=vi,
            batch_size=int(cfg.datamodule.get("batch_size") or self.params.loader.batch_size),
            num_workers=int(self.params.loader.num_workers),
        )
        L.seed_everything(int(self.params.seed), workers=True, verbose=False)
        module = instantiate(
            cfg.module,
            n_classes=len(self.classes_),
            classes=self.classes_,
            roll=_roll_dict(cfg.roll),
            crop_steps=int(cfg.datamodule.crop_steps),
            eval_crops_per_song=int(cfg.datamodule.eval_crops_per_song),
            _convert_="all",
        )
        self.fit_result = fit_lightning(
            module,
            datamodule,
            self.params,
            self.run_name,
            ckpt_dir,
            concern="classification",
            own_max_epochs=int(cfg.max_epochs),
            monitor=str(cfg.get("monitor", "val_f1")),
            mode=str(cfg.get("monitor_mode", "max")),
            progress_bar=False,
            patience=cfg.get("patience"),
        )
        best = self.fit_result.best_checkpoint
        self.module = (
            PianoRollCNN.load_from_checkpoint(best, map_location="cpu") if best else module
        )
        self.module.eval()
        return self

    def predict_proba(self, rolls: list[sparse.spmatrix]) -> np.ndarray:
        if self.module is None:
            raise RuntimeError("fit or load the classifier first")
        return predict_songs(self.module, rolls)

    def predict(self, rolls: list[sparse.spmatrix]) -> np.ndarray:
        return np.asarray(self.classes_, dtype=object)[self.predict_proba(rolls).argmax(1)]


def _roll_dict(roll_cfg: Any) -> dict:
    return asdict(RollSpec.from_params(roll_cfg))


def load_cnn(path: str | Path) -> PianoRollCNN:
    """A trained CNN from its checkpoint (its classes and roll spec are in ``hparams``)."""
    module = PianoRollCNN.load_from_checkpoint(str(path), map_location="cpu")
    module.eval()
    return module


@torch.no_grad()
def predict_songs(
    module: PianoRollCNN, rolls: list[sparse.spmatrix], batch_size: int = 256
) -> np.ndarray:
    """Per song, the mean softmax over evenly spaced crops (song-level probabilities).

    On one torch thread: a song's few crops are too small a batch for two threads to share,
    and two spin whenever another process is runnable (the genre CNN on its 746 test and
    validation songs beside other work: 0.8 s on one thread, 5 to 60 s on two), with
    probabilities bit-for-bit the same."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _predict_songs(module, rolls, batch_size)
    finally:
        torch.set_num_threads(threads)


def _predict_songs(
    module: PianoRollCNN, rolls: list[sparse.spmatrix], batch_size: int
) -> np.ndarray:
    module.eval()
    length = int(module.hparams.crop_steps)
    n = int(module.hparams.eval_crops_per_song)
    out = np.zeros((len(rolls), int(module.hparams.n_classes)), dtype=np.float64)
    device = next(module.parameters()).device
    for i, r in enumerate(rolls):
        starts = crop_starts(r.shape[1], length, n)
        x = torch.from_numpy(crops(sparse.csc_matrix(r), length, starts)).unsqueeze(1)
        probs = []
        for b in range(0, len(x), batch_size):
            logits = module(x[b : b + batch_size].to(device))
            probs.append(torch.softmax(logits.float(), dim=1).cpu().numpy())
        out[i] = np.concatenate(probs).mean(axis=0)
    return out
