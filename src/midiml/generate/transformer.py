"""Training side of the token Transformer (torch + Lightning): LightningModule, DataModule,
the training entry point and the export of the weights to the numpy runtime.

Roles as in lightning-hydra-template: ``TransformerNetwork`` (transformer_network.py) is the
pure ``nn.Module``; ``TokenTransformer`` the LightningModule (loss, optimiser, schedule);
``TokenDataModule`` the data; all three are built from ``model.transformer`` with
``_target_``. Inference (``midiml continue``) never imports this module: the trained weights
are written to ``weights.npz`` and run by transformer_numpy.py (no torch start-up).
"""

from __future__ import annotations

import math
import shutil
import time
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch.utils.data import DataLoader, Dataset

from midiml.generate.transformer_network import TransformerNetwork
from midiml.generate.transformer_numpy import Grammar, TransformerContinuer, save_model
from midiml.represent import tokens as tk
from midiml.training import fit_lightning, model_precision

PAD = 0  # MidiTok's PAD_None


class TokenTransformer(L.LightningModule):
    """Next-token loss of ``net``; ``val_loss`` is nats per token on the validation songs."""

    def __init__(
        self,
        net: TransformerNetwork,
        lr: float = 1e-3,
        weight_decay: float = 0.01,
        warmup_steps: int = 100,
        total_steps: int = 2000,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["net"])
        self.hparams["net_config"] = dict(net.config)
        self.net = net

    def _loss(self, batch: torch.Tensor) -> torch.Tensor:
        """``batch`` (B, 2, T + 1): the windows' ids and their bar positions."""
        ids, bars = batch[:, 0], batch[:, 1]
        return self.net.nll(ids[:, :-1], ids[:, 1:], PAD, bars[:, :-1])

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        loss = self._loss(batch)
        self.log("train_loss", loss, prog_bar=True)
        return loss

    def validation_step(self, batch: torch.Tensor, batch_idx: int) -> None:
        self.log("val_loss", self._loss(batch), prog_bar=True)

    def configure_optimizers(self) -> Any:
        hp = self.hparams
        opt = torch.optim.AdamW(self.parameters(), lr=hp.lr, weight_decay=hp.weight_decay)

        def schedule(step: int) -> float:
            if step < hp.warmup_steps:
                return (step + 1) / hp.warmup_steps
            frac = min(1.0, (step - hp.warmup_steps) / max(1, hp.total_steps - hp.warmup_steps))
            return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    @classmethod
    def from_checkpoint(cls, path: str | Path) -> TokenTransformer:
        """Rebuild the network from the hyperparameters saved in the checkpoint."""
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
        net = TransformerNetwork(**ckpt["hyper_parameters"]["net_config"])
        return cls.load_from_checkpoint(path, map_location="cpu", net=net, weights_only=False)


class TokenWindows(Dataset):
    """Windows ``[Genre] + ids[s : s + context]`` of the songs of one split, each item
    (2, context + 1): the ids and their bar positions (``bar_positions``, one per id of
    ``data["ids"]``: where in its bar the music is after the id, counted from the song's
    start, so a window that begins mid-bar knows it too).

    Training draws ``n_windows`` random starts per epoch (seeded per epoch); validation uses
    its own fixed draw, so its loss is comparable between epochs.

    ``genre_power``: a genre is drawn with probability proportional to its tokens raised to
    this power (1: every token alike, the lo-fi loops then fill 1 window in 10,000; 0: every
    genre alike), a song within its genre by its tokens (unpacked: by its span beyond one
    context, as before genres were weighed). ``pack``: a window whose song ends
    early is filled with whole further songs of the same genre (each with its own genre id),
    as language models pack short documents; without it short songs are padded.
    """

    def __init__(
        self,
        data: dict[str, np.ndarray],
        split: str,
        context: int,
        n_windows: int,
        seed: int,
        bar_positions: np.ndarray,
        genre_power: float = 1.0,
        pack: bool = False,
    ) -> None:
        self.ids = data["ids"].astype(np.int64)
        self.bars = np.asarray(bar_positions, np.int64)
        self.context = context
        rows = np.flatnonzero(data["splits"] == split)
        lo, hi = data["offsets"][rows], data["offsets"][rows + 1]
        span = np.maximum(hi - lo - 1 - context, 1)
        weight = (hi - lo - 1 if pack else span).astype(np.float64)
        genres = np.asarray(data["genres"])[rows]
        for g in np.unique(genres):  # the genre's share, then its songs by their tokens
            own = genres == g
            weight[own] *= weight[own].sum() ** (genre_power - 1.0)
        rng = np.random.default_rng(seed)
        song = rng.choice(len(rows), size=n_windows, p=weight / weight.sum())
        self.genre_pos = lo[song]
        self.starts = lo[song] + 1 + (rng.random(n_windows) * span[song]).astype(np.int64)
        self.ends = hi[song]
        # the whole songs that fill each window after its own (pack): same genre, seeded
        self.fill: list[list[int]] = [[] for _ in song]
        if pack:
            of_genre = {g: np.flatnonzero(genres == g) for g in np.unique(genres)}
            for i, k in enumerate(song):
                room = context - (hi[k] - self.starts[i])
                mates = of_genre[genres[k]]
                while room > 0 and len(mates) > 1:
                    m = int(rng.choice(mates))
                    self.fill[i].append(int(rows[m]))
                    room -= hi[m] - lo[m]
        self.offsets = data["offsets"]

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, i: int) -> torch.Tensor:
        out = np.zeros((2, self.context + 1), np.int64)  # PAD, bar position 0
        out[0, 0] = self.ids[self.genre_pos[i]]
        at = 1
        parts = [(int(self.starts[i]), int(self.ends[i]))]
        parts += [(int(self.offsets[r]), int(self.offsets[r + 1])) for r in self.fill[i]]
        for s, e in parts:
            n = min(e - s, self.context + 1 - at)
            out[0, at : at + n] = self.ids[s : s + n]
            out[1, at : at + n] = self.bars[s : s + n]
            at += n
        return torch.from_numpy(out)


class TokenDataModule(L.LightningDataModule):
    def __init__(
        self,
        path: str = "data/processed/tokens.npz",
        context: int = 512,
        batch_size: int = 16,
        train_windows: int = 4000,
        val_windows: int = 400,
        passes: float = 0.25,
        seed: int = 0,
        tokenizer_path: str = "data/processed/tokenizer.json",
        genre_power: float = 1.0,
        pack: bool = False,
    ) -> None:
        super().__init__()
        self.path, self.context, self.batch_size = path, context, batch_size
        self.tokenizer_path = tokenizer_path
        self.train_windows, self.val_windows, self.seed = train_windows, val_windows, seed
        self.passes = passes
        self.draw = {"genre_power": float(genre_power), "pack": bool(pack)}

    def _windows(self, split: str, most: int) -> int:
        """``most``, but at most ``passes`` x the split's tokens per epoch (small data)."""
        rows = self.data["splits"] == split
        tokens = float(np.diff(self.data["offsets"])[rows].sum())
        return max(self.batch_size, min(most, int(self.passes * tokens / self.context)))

    def setup(self, stage: str | None = None) -> None:
        z = np.load(self.path)
        self.data = {k: z[k] for k in z.files}
        tokenizer, genres = tk.load_tokenizer(self.tokenizer_path)
        self.bar_positions = Grammar(tokenizer, len(genres)).bar_positions(self.data["ids"])
        self.train_windows = self._windows("train", self.train_windows)
        n_val = self._windows("val", self.val_windows)
        self.val = TokenWindows(
            self.data, "val", self.context, n_val, self.seed, self.bar_positions, **self.draw
        )

    def train_dataloader(self) -> DataLoader:
        epoch = self.trainer.current_epoch if self.trainer is not None else 0
        train = TokenWindows(
            self.data, "train", self.context, self.train_windows, self.seed + 1 + epoch,
            self.bar_positions, **self.draw,
        )  # fmt: skip
        return DataLoader(train, batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val, batch_size=self.batch_size)


def train_transformer(
    cfg: Any,
    params: Any,
    tokens_path: str | Path,
    tokenizer_path: str | Path,
    out_dir: Path,
    ckpt_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Fit ``cfg.module`` on ``cfg.datamodule``; save the checkpoint, tokenizer and the numpy
    weights (``weights.npz``) the inference runtime reads.

    ``ckpt_dir``: where Lightning's checkpoints live (``last.ckpt`` too); with
    ``cfg.resume`` a killed run continues from its ``last.ckpt`` (Lightning ckpt_path="last").
    """
    z = np.load(tokens_path)
    vocab_size = int(z["vocab_size"])
    L.seed_everything(int(params.seed), workers=True, verbose=False)
    module = instantiate(cfg.module, net={"vocab_size": vocab_size})
    datamodule = instantiate(
        cfg.datamodule, path=str(tokens_path), tokenizer_path=str(tokenizer_path)
    )
    ckpt = Path(ckpt_dir) if ckpt_dir is not None else Path(out_dir) / "ckpt"
    precision = model_precision(cfg.get("precision"), params)
    cpu_start = time.process_time()
    res = fit_lightning(
        module,
        datamodule,
        params,
        "transformer",
        ckpt,
        own_max_epochs=int(cfg.max_epochs),
        resume=bool(cfg.get("resume", False)),
        precision=precision,
    )
    cpu_seconds = time.process_time() - cpu_start
    shutil.copy(res.best_checkpoint, Path(out_dir) / "best.ckpt")
    if ckpt_dir is None:
        shutil.rmtree(ckpt, ignore_errors=True)
    best = TokenTransformer.from_checkpoint(Path(out_dir) / "best.ckpt")
    tokenizer, genres = tk.load_tokenizer(tokenizer_path)
    config = OmegaConf.to_container(cfg.module, resolve=True)
    save_model(Path(out_dir), best.net.numpy_weights(), best.net.config, tokenizer, genres, config)
    n_tokens = datamodule.train_windows * int(cfg.datamodule.context) * max(res.epochs, 1)
    return {
        "epochs": res.epochs,
        "best_val_loss_nats_per_token": res.best_score,
        "best_val_bits_per_token": res.best_score / math.log(2) if res.best_score else None,
        "train_seconds": res.train_seconds,
        "precision": precision or str(params.trainer.precision),
        "train_tokens": n_tokens,
        "train_tokens_per_second": n_tokens / max(res.train_seconds, 1e-9),
        # CPU time of the process (all threads): comparable on a machine busy with others
        "train_cpu_seconds": cpu_seconds,
        "train_tokens_per_cpu_second": n_tokens / max(cpu_seconds, 1e-9),
        "parameters": sum(p.numel() for p in best.net.parameters()),
        "history": res.history,
    }


__all__ = ["TokenDataModule", "TokenTransformer", "TransformerContinuer", "train_transformer"]
