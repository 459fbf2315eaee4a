"""LightningDataModules of the generators' data shapes.

``WindowDataModule``: batches ``(windows (B, n_in, 4), next_event (B, 4))`` drawn from the
concatenated event array by start index (no copy of the corpus per window). Each epoch draws
a fresh random subset of ``windows_per_epoch`` training windows, which bounds CPU time on long
pieces; validation sees every validation window in order.
"""

from __future__ import annotations

import lightning as L
import numpy as np
import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, SequentialSampler

from midiml.represent.windows import EventData


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


class WindowDataModule(L.LightningDataModule):
    """Train/val windows of the last ``n_in`` events before each window's target.

    Windows were cut with ``data.n_in`` events of context; a model using fewer takes the most
    recent ``n_in`` of them (its starts shift right by ``data.n_in - n_in``).
    """

    def __init__(
        self,
        data: EventData,
        n_in: int = 16,
        windows_per_epoch: int | None = None,
        batch_size: int = 256,
        num_workers: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if n_in > data.n_in:
            raise ValueError(f"model context {n_in} exceeds the window size {data.n_in}")
        self.data = data
        self.n_in = int(n_in)
        self.windows_per_epoch = windows_per_epoch
        self.batch_size = int(batch_size)
        self.num_workers = int(num_workers)
        self.seed = int(seed)

    def _loader(self, split: str) -> DataLoader:
        shift = self.data.n_in - self.n_in
        ds = WindowBatches(self.data.events, self.data.starts[split] + shift, self.n_in)
        if split == "train":
            n = len(ds)
            if self.windows_per_epoch:
                n = min(int(self.windows_per_epoch), n)
            gen = torch.Generator().manual_seed(self.seed)
            base = RandomSampler(range(len(ds)), replacement=False, num_samples=n, generator=gen)
        else:
            base = SequentialSampler(range(len(ds)))
        sampler = BatchSampler(base, batch_size=self.batch_size, drop_last=False)
        return DataLoader(
            ds,
            sampler=sampler,
            batch_size=None,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train")

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")
