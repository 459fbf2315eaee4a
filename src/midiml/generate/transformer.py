"""Decoder-only causal Transformer over REMI tokens, conditioned on a genre token.

Every training window starts with the song's ``Genre_<g>`` token, so generation can ask for
a genre. Sampling keeps a KV cache (one new token per step costs one position of attention),
masks every token the REMI grammar forbids after the previous one (and positions that would
go back in time within a bar), and applies temperature, top-k and top-p. Pitch tokens can
also be reweighted by the prompt-aware guards of generate/prompted.py (key, register, steps,
repeats) — the same documented sampling options the other generators use.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset

from midiml.generate.base import N_PITCHES, write_meta
from midiml.generate.prompted import (
    NoteColumns,
    SamplingGuards,
    longest_run,
    match_steps,
    pitched,
    static_weights,
    step_weights,
)
from midiml.represent import tokens as tk
from midiml.training import fit_lightning

TOKENIZER_FILE = "tokenizer.json"


class Block(nn.Module):
    """Pre-norm Transformer block whose attention can extend a key/value cache."""

    def __init__(self, d_model: int, n_heads: int, dropout: float) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.ln1 = nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.ln2 = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(
            nn.Linear(d_model, 4 * d_model), nn.GELU(), nn.Linear(4 * d_model, d_model)
        )
        self.drop = nn.Dropout(dropout)
        self.dropout = dropout

    def forward(
        self, x: torch.Tensor, cache: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(d, dim=2)
        shape = (b, t, self.n_heads, d // self.n_heads)
        q, k, v = (z.view(shape).transpose(1, 2) for z in (q, k, v))
        if cache is not None:
            k = torch.cat([cache[0], k], dim=2)
            v = torch.cat([cache[1], v], dim=2)
        causal = cache is None or cache[0].shape[2] == 0
        att = F.scaled_dot_product_attention(
            q, k, v, is_causal=causal and t > 1, dropout_p=self.dropout if self.training else 0.0
        )
        x = x + self.drop(self.proj(att.transpose(1, 2).reshape(b, t, d)))
        x = x + self.drop(self.mlp(self.ln2(x)))
        return x, (k, v)


class TokenTransformer(L.LightningModule):
    """GPT-style next-token model; ``val_loss`` is nats per token on the validation songs."""

    def __init__(
        self,
        vocab_size: int = 512,
        context: int = 256,
        d_model: int = 128,
        n_layers: int = 3,
        n_heads: int = 4,
        dropout: float = 0.1,
        lr: float = 1e-3,
        weight_decay: float = 0.01,
        warmup_steps: int = 100,
        total_steps: int = 2000,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.embed = nn.Embedding(vocab_size, d_model)
        self.pos = nn.Embedding(context, d_model)
        self.blocks = nn.ModuleList(Block(d_model, n_heads, dropout) for _ in range(n_layers))
        self.ln = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab_size, bias=False)
        self.head.weight = self.embed.weight  # tied embeddings: fewer parameters on a CPU
        self.apply(self._init)

    @staticmethod
    def _init(m: nn.Module) -> None:
        """GPT-2's small init: unit-variance embeddings would make the tied logits explode."""
        if isinstance(m, nn.Linear | nn.Embedding):
            nn.init.normal_(m.weight, std=0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)

    def forward(
        self, ids: torch.Tensor, cache: list[Any] | None = None, start: int = 0
    ) -> tuple[torch.Tensor, list[Any]]:
        pos = torch.arange(start, start + ids.shape[1], device=ids.device)
        x = self.embed(ids) + self.pos(pos)[None]
        new_cache = []
        for i, block in enumerate(self.blocks):
            x, kv = block(x, None if cache is None else cache[i])
            new_cache.append(kv)
        return self.head(self.ln(x)), new_cache

    def _loss(self, batch: torch.Tensor) -> torch.Tensor:
        logits, _ = self(batch[:, :-1])
        return F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]).float(), batch[:, 1:].reshape(-1), ignore_index=0
        )

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


class TokenWindows(Dataset):
    """Windows ``[Genre] + tokens[s : s + context]`` of the songs of one split.

    Training draws ``n_windows`` random starts per epoch (seeded per epoch by the sampler);
    validation uses evenly spaced starts, so its loss is comparable between epochs.
    """

    def __init__(
        self, data: dict[str, np.ndarray], split: str, context: int, n_windows: int, seed: int
    ) -> None:
        self.ids = data["ids"].astype(np.int64)
        self.context = context
        rows = np.flatnonzero(data["splits"] == split)
        lo, hi = data["offsets"][rows], data["offsets"][rows + 1]
        # a window starts after the genre token; songs shorter than a window are padded
        span = np.maximum(hi - lo - 1 - context, 1)
        rng = np.random.default_rng(seed)
        song = rng.choice(len(rows), size=n_windows, p=span / span.sum())
        self.genre_pos = lo[song]
        self.starts = lo[song] + 1 + (rng.random(n_windows) * span[song]).astype(np.int64)
        self.ends = hi[song]

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, i: int) -> torch.Tensor:
        s, e = int(self.starts[i]), int(self.ends[i])
        body = self.ids[s : min(s + self.context, e)]
        out = np.zeros(self.context + 1, np.int64)
        out[0] = self.ids[self.genre_pos[i]]
        out[1 : 1 + len(body)] = body
        return torch.from_numpy(out)


class TokenDataModule(L.LightningDataModule):
    def __init__(
        self,
        path: str = "data/processed/tokens.npz",
        context: int = 256,
        batch_size: int = 32,
        train_windows: int = 4000,
        val_windows: int = 400,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.path, self.context, self.batch_size = path, context, batch_size
        self.train_windows, self.val_windows, self.seed = train_windows, val_windows, seed
        self.epoch = 0

    def setup(self, stage: str | None = None) -> None:
        z = np.load(self.path)
        self.data = {k: z[k] for k in z.files}
        self.val = TokenWindows(self.data, "val", self.context, self.val_windows, self.seed)

    def train_dataloader(self) -> DataLoader:
        self.epoch += 1  # fresh random windows every epoch
        train = TokenWindows(
            self.data, "train", self.context, self.train_windows, self.seed + self.epoch
        )
        return DataLoader(train, batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val, batch_size=self.batch_size)


def sample_token(
    logits: np.ndarray, temperature: float, top_k: int, top_p: float, rng: np.random.Generator
) -> int:
    """One draw from logits (-inf = forbidden) with temperature, top-k and top-p."""
    if temperature <= 0:
        return int(np.argmax(logits))
    z = logits / temperature
    z = z - z.max()
    p = np.exp(z)
    p /= p.sum()
    order = np.argsort(-p, kind="stable")
    keep = int((p > 0).sum())
    if top_k and 0 < top_k < keep:
        keep = top_k
    if 0 < top_p < 1:
        keep = min(keep, int(np.searchsorted(np.cumsum(p[order]), top_p) + 1))
    idx = order[:keep]
    q = p[idx] / p[idx].sum()
    return int(idx[min(int((np.cumsum(q) < rng.random()).sum()), keep - 1)])


class TransformerContinuer:
    """A trained TokenTransformer + its tokenizer, offering ``continue_notes``."""

    kind = "transformer"
    n_in = 1

    def __init__(
        self,
        module: TokenTransformer,
        tokenizer: Any,
        guards: SamplingGuards | None = None,
        top_k: int = 0,
        default_genre: str | None = None,
    ) -> None:
        self.module = module.eval()
        self.tokenizer = tokenizer
        self.guards = guards if guards is not None else SamplingGuards()
        self.top_k = top_k
        self.types = tk.token_types(tokenizer)
        self.values = tk.token_values(tokenizer)
        self.grammar = tk.transition_mask(self.types)
        self.res = tk.positions_per_beat(tokenizer)
        self.genres = sorted(t[6:] for t in tokenizer.vocab if t.startswith("Genre_"))
        self.default_genre = default_genre or (self.genres[0] if self.genres else None)
        pitch_ids = np.flatnonzero(self.types == tk.PITCH)
        self.pitch_ids, self.pitch_of = pitch_ids, self.values["pitch"][pitch_ids]

    # -- saving ---------------------------------------------------------------------------
    def save(self, model_dir: Path, config: dict, checkpoint: str = "best.ckpt") -> None:
        """The tokenizer beside the checkpoint; ``meta.json`` names the config and this class."""
        tk.save_tokenizer(self.tokenizer, Path(model_dir) / TOKENIZER_FILE)
        cls = type(self)
        write_meta(
            model_dir,
            "transformer",
            config,
            continuer=f"{cls.__module__}.{cls.__qualname__}",
            n_in=1,
            checkpoint=checkpoint,
            tokenizer=TOKENIZER_FILE,
            genres=self.genres,
        )

    @classmethod
    def load(cls, model_dir: Path, guards: SamplingGuards | None = None, top_k: int = 0):
        meta = json.loads((Path(model_dir) / "meta.json").read_text())
        module = TokenTransformer.load_from_checkpoint(
            Path(model_dir) / meta["checkpoint"], map_location="cpu", weights_only=False
        )
        tokenizer = tk.load_tokenizer(Path(model_dir) / meta["tokenizer"])
        return cls(module, tokenizer, guards, top_k)

    def token_bits(self, tokens: dict[str, np.ndarray]) -> dict[str, Any]:
        """Bits per note on the test songs' tokens, with the conditioning stated."""
        return {
            **token_bits(self.module, self.tokenizer, tokens),
            "conditioning": f"genre token + all previous tokens of its "
            f"{self.module.hparams.context}-token chunk (incl. the note's bar and position)",
        }

    # -- prompt <-> tokens ------------------------------------------------------------------
    def prompt_ids(self, notes: NoteColumns) -> tuple[np.ndarray, float, float]:
        """Prompt tokens, seconds per beat and the prompt's start (s)."""
        cols = pitched(notes)
        if "onset_beats" in notes and "duration_beats" in notes:
            keep = ~np.asarray(notes["is_drum"], bool) if "is_drum" in notes else slice(None)
            on_b = np.asarray(notes["onset_beats"], np.float64)[keep]
            dur_b = np.asarray(notes["duration_beats"], np.float64)[keep]
            on_s = np.asarray(notes["onset_s"], np.float64)[keep]
            order = np.lexsort((np.asarray(notes["pitch"])[keep], on_b))
            on_b, dur_b, on_s = on_b[order], dur_b[order], on_s[order]
            span_b = on_b[-1] - on_b[0]
            spb = (on_s[-1] - on_s[0]) / span_b if span_b > 0 else 0.5
        else:
            spb = 0.5  # 120 qpm when the caller gives no beats
            on_b = cols["onset_s"] / spb
            dur_b = cols["duration_s"] / spb
        start_b = math.floor(on_b[0] / 4) * 4  # keep the prompt's place in the bar
        lo, hi = self.tokenizer.config.pitch_range
        pitch = np.clip(cols["pitch"], lo, hi - 1)
        score = tk.notes_to_score(pitch, cols["velocity"], on_b - start_b, dur_b)
        start_s = float(cols["onset_s"][0] - (on_b[0] - start_b) * spb)
        return tk.encode(self.tokenizer, score), spb, start_s

    # -- sampling ---------------------------------------------------------------------------
    @torch.no_grad()
    def continue_notes(
        self,
        prompt_notes: NoteColumns,
        seconds: float,
        temperature: float = 1.0,
        top_p: float = 0.95,
        seed: int = 0,
        genre: str | None = None,
    ) -> dict[str, np.ndarray]:
        """New notes after the prompt for ``seconds`` (see generate/prompted.py)."""
        events = pitched(prompt_notes)
        if len(events["pitch"]) == 0:
            raise ValueError("the prompt has no (non-drum) notes to continue")
        genre = genre or self.default_genre
        if genre not in self.genres:
            raise ValueError(f"unknown genre {genre!r}; this model knows {', '.join(self.genres)}")
        ids, spb, start_s = self.prompt_ids(prompt_notes)
        new_ids = self.sample(ids, genre, seconds / spb, temperature, top_p, seed, events)
        return self.ids_to_notes(ids, new_ids, spb, start_s)

    @torch.no_grad()
    def sample(
        self,
        prompt: np.ndarray,
        genre: str,
        beats: float,
        temperature: float,
        top_p: float,
        seed: int,
        events: dict[str, np.ndarray] | None = None,
    ) -> list[int]:
        """Grammar-guarded KV-cached sampling until ``beats`` past the prompt's last bar pos."""
        torch.set_num_threads(1)
        rng = np.random.default_rng(seed)
        context = int(self.module.hparams.context)
        genre_id = self.tokenizer.vocab[f"Genre_{genre}"]
        seq = [genre_id, *map(int, prompt)]
        time_b, bar_b, pos, last_pitch = self.replay_time(prompt)
        end_b = time_b + beats
        pitch_w, stepw, max_run = self._guard_tables(events)
        run, recent = 1, []
        new: list[int] = []
        cache, n_cached = None, 0
        eos = self.tokenizer.vocab["EOS_None"]
        for _ in range(int(beats * 4 * 8) + 64):
            if cache is None or n_cached >= context:
                keep = seq[-(context // 2) :] if len(seq) > context // 2 else seq[1:]
                window = [genre_id, *keep] if keep[0] != genre_id else keep
                logits, cache = self.module(torch.tensor([window]))
                n_cached = len(window)
            else:
                logits, cache = self.module(torch.tensor([[seq[-1]]]), cache=cache, start=n_cached)
                n_cached += 1
            z = logits[0, -1].float().numpy().astype(np.float64)
            prev_type = int(self.types[seq[-1]])
            allowed = self.grammar[prev_type].copy()
            allowed[eos] = False
            allowed[self.types == tk.SPECIAL] = False
            allowed[(self.types == tk.POSITION) & (self.values["position"] <= pos)] = False
            z = np.where(allowed, z, -np.inf)
            if prev_type in (tk.POSITION, tk.DURATION) and events is not None:
                w = pitch_w.copy()
                if last_pitch is not None and self.guards.steps:
                    w = match_steps(w, last_pitch, stepw, self.guards.step_strength)
                    # matching may lift a step size whose only pitches are off-key: key and
                    # register weights are applied once more so they keep the last word
                    w = w * pitch_w / max(float(pitch_w.max()), 1e-12)
                if self.guards.repeats and last_pitch is not None:
                    if run >= max_run:
                        w[last_pitch] = 0.0
                    if recent:
                        counts = np.bincount(recent[-self.guards.recent :], minlength=N_PITCHES)
                        counts[last_pitch] = 0
                        w = w / (1.0 + self.guards.recent_penalty * counts)
                z = self._reweight_pitches(z, w, last_pitch)
            if not np.isfinite(z).any():
                break
            tok = sample_token(z, temperature, self.top_k, top_p, rng)
            seq.append(tok)
            new.append(tok)
            kind = int(self.types[tok])
            if kind == tk.BAR:
                bar_b += 4
                pos = -1
            elif kind == tk.POSITION:
                pos = int(self.values["position"][tok])
                if bar_b + pos / self.res > end_b:
                    new.pop()
                    break
            elif kind == tk.PITCH:
                p = int(self.values["pitch"][tok])
                run = run + 1 if p == last_pitch else 1
                recent.append(p)
                last_pitch = p
        # drop a trailing incomplete note (Position/Pitch/Velocity without its Duration)
        while new and int(self.types[new[-1]]) != tk.DURATION:
            new.pop()
        return new

    def _guard_tables(
        self, events: dict[str, np.ndarray] | None
    ) -> tuple[np.ndarray, np.ndarray, int]:
        if events is None:
            return np.ones(N_PITCHES), np.ones(N_PITCHES), N_PITCHES
        ev = np.stack(
            [
                events["pitch"],
                events["velocity"],
                np.zeros(len(events["pitch"])),
                events["duration_s"],
            ],
            axis=1,
        )
        max_run = longest_run(ev[:, 0]) if self.guards.repeats else N_PITCHES
        return static_weights(ev, self.guards), step_weights(ev, self.guards), max_run

    def _reweight_pitches(self, z: np.ndarray, w: np.ndarray, last: int | None) -> np.ndarray:
        """Multiply the pitch tokens' probabilities by the guards' weights ``w`` (128,)."""
        out = z.copy()
        ok = np.isfinite(out[self.pitch_ids])
        weight = w[self.pitch_of]
        if (weight[ok] > 0).any():
            with np.errstate(divide="ignore"):
                out[self.pitch_ids] = out[self.pitch_ids] + np.log(weight)
        return out

    def replay_time(self, prompt: np.ndarray) -> tuple[float, float, int, int | None]:
        """Beat of the last note onset, start beat of the last bar, last position, last pitch."""
        bar_b, pos, onset, last_pitch = -4.0, -1, 0.0, None
        for tok in prompt:
            kind = int(self.types[tok])
            if kind == tk.BAR:
                bar_b += 4
                pos = -1
            elif kind == tk.POSITION:
                pos = int(self.values["position"][tok])
                onset = bar_b + pos / self.res
            elif kind == tk.PITCH:
                last_pitch = int(self.values["pitch"][tok])
        return onset, bar_b, pos, last_pitch

    def ids_to_notes(
        self, prompt: np.ndarray, new: list[int], spb: float, start_s: float
    ) -> dict[str, np.ndarray]:
        """The new tokens as notes in seconds on the prompt's clock."""
        _, bar_b, pos, _ = self.replay_time(prompt)
        rows: list[tuple[float, float, float, float]] = []
        onset = bar_b + max(pos, 0) / self.res
        pitch = vel = None
        for tok in new:
            kind = int(self.types[tok])
            if kind == tk.BAR:
                bar_b += 4
            elif kind == tk.POSITION:
                onset = bar_b + self.values["position"][tok] / self.res
            elif kind == tk.PITCH:
                pitch = self.values["pitch"][tok]
            elif kind == tk.VELOCITY:
                vel = self.values["velocity"][tok]
            elif kind == tk.DURATION and pitch is not None:
                dur = self.values["duration"][tok]
                rows.append((pitch, vel or 80, start_s + onset * spb, dur * spb))
                pitch = vel = None
        table = np.array(rows, np.float64).reshape(-1, 4)
        return {
            name: table[:, i]
            for i, name in enumerate(("pitch", "velocity", "onset_s", "duration_s"))
        }


def train_transformer(
    cfg: Any, params: Any, tokens_path: str | Path, tokenizer_path: str | Path, out_dir: Path
) -> dict[str, Any]:
    """Fit ``cfg.module`` on ``cfg.datamodule`` with fit_lightning; save model + tokenizer."""
    tokenizer = tk.load_tokenizer(tokenizer_path)
    # seed before the weights are drawn: torch's own start seed differs in every process
    L.seed_everything(int(params.seed), workers=True, verbose=False)
    module = instantiate(cfg.module, vocab_size=len(tokenizer))
    datamodule = instantiate(cfg.datamodule, path=str(tokens_path))
    res = fit_lightning(
        module,
        datamodule,
        params,
        "transformer",
        Path(out_dir) / "ckpt",
        own_max_epochs=int(cfg.max_epochs),
    )
    shutil.copy(res.best_checkpoint, Path(out_dir) / "best.ckpt")
    shutil.rmtree(Path(out_dir) / "ckpt", ignore_errors=True)
    best = TokenTransformer.load_from_checkpoint(
        Path(out_dir) / "best.ckpt", map_location="cpu", weights_only=False
    )
    config = OmegaConf.to_container(cfg.module, resolve=True)
    TransformerContinuer(best, tokenizer).save(Path(out_dir), config)
    return {
        "epochs": res.epochs,
        "best_val_loss_nats_per_token": res.best_score,
        "train_seconds": res.train_seconds,
        "parameters": sum(p.numel() for p in best.parameters()),
        "history": res.history,
    }


@torch.no_grad()
def token_bits(
    module: TokenTransformer, tokenizer: Any, data: dict[str, np.ndarray], split: str = "test"
) -> dict[str, float]:
    """Bits per note of the split's songs (untransposed), in chunks of ``context`` tokens.

    ``pitch_bits_per_note``: -log2 p(pitch token | genre and all previous tokens of the chunk,
    including this note's bar and position); ``all_bits_per_note``: every token (bar,
    position, pitch, velocity, duration) summed per note.
    """
    module.eval()
    context = int(module.hparams.context)
    types = tk.token_types(tokenizer)
    rows = np.flatnonzero(data["splits"] == split)
    total = pitch_bits = 0.0
    notes = 0
    for r in rows:
        seq = data["ids"][data["offsets"][r] : data["offsets"][r + 1]].astype(np.int64)
        genre, body = seq[0], seq[1:]
        for s in range(0, len(body) - 1, context - 1):
            chunk = np.r_[genre, body[s : s + context - 1]]
            if len(chunk) < 2:
                continue
            logits, _ = module(torch.from_numpy(chunk[None, :-1]))
            logp = torch.log_softmax(logits[0].float(), dim=-1)
            target = torch.from_numpy(chunk[1:])
            bits = -logp.gather(1, target[:, None])[:, 0].numpy() / np.log(2)
            is_pitch = types[chunk[1:]] == tk.PITCH
            total += float(bits.sum())
            pitch_bits += float(bits[is_pitch].sum())
            notes += int(is_pitch.sum())
    return {
        "pitch_bits_per_note": pitch_bits / max(notes, 1),
        "all_bits_per_note": total / max(notes, 1),
        "notes": notes,
    }
