"""The token Transformer's network: a decoder-only Transformer with rotary positions (RoPE).

Rotary positions make attention depend on the distance between tokens, not on where a
window starts, so "play what came 4 bars ago again" is the same pattern anywhere in the
context: repetition and copying of the prompt are learnable. Pre-norm blocks, GELU (tanh
form, which the numpy runtime computes exactly the same way), no biases in attention, tied
input/output embeddings. ``forward`` can extend a key/value cache (the numpy runtime in
transformer_numpy.py is the same computation; a test holds them equal).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

ROPE_BASE = 10_000.0


def rope_tables(positions: torch.Tensor, head_dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(T, head_dim/2) cos and sin of the rotation angles at ``positions``."""
    inv = ROPE_BASE ** (-torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
    ang = positions.float()[:, None] * inv.to(positions.device)[None]
    return ang.cos(), ang.sin()


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate pairs (first half, second half) of the last axis of (B, H, T, D)."""
    a, b = x.chunk(2, dim=-1)
    return torch.cat([a * cos - b * sin, a * sin + b * cos], dim=-1)


class Block(nn.Module):
    """Pre-norm attention + MLP block."""

    def __init__(self, d_model: int, n_heads: int, dropout: float) -> None:
        super().__init__()
        self.n_heads, self.dropout = n_heads, dropout
        self.ln1 = nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=False)
        self.proj = nn.Linear(d_model, d_model, bias=False)
        self.ln2 = nn.LayerNorm(d_model)
        self.fc1 = nn.Linear(d_model, 4 * d_model)
        self.fc2 = nn.Linear(4 * d_model, d_model)
        self.drop = nn.Dropout(dropout)

    def forward(
        self,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        cache: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(d, dim=2)
        shape = (b, t, self.n_heads, d // self.n_heads)
        q, k, v = (z.view(shape).transpose(1, 2) for z in (q, k, v))
        q, k = rotate(q, cos, sin), rotate(k, cos, sin)
        if cache is not None and cache[0].shape[2]:
            k = torch.cat([cache[0], k], dim=2)
            v = torch.cat([cache[1], v], dim=2)
        if t > 1 and k.shape[2] > t:  # several new tokens after a cache: explicit mask
            n = k.shape[2]
            mask = torch.ones(t, n, dtype=torch.bool, device=x.device).tril(n - t)
            att = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        else:
            # no attention dropout: with it torch's CPU attention falls back to the slow path
            att = F.scaled_dot_product_attention(q, k, v, is_causal=t > 1)
        x = x + self.drop(self.proj(att.transpose(1, 2).reshape(b, t, d)))
        x = x + self.drop(self.fc2(F.gelu(self.fc1(self.ln2(x)), approximate="tanh")))
        return x, (k, v)


class TransformerNetwork(nn.Module):
    """Token ids (B, T) -> next-token logits (B, T, vocab_size)."""

    def __init__(
        self,
        vocab_size: int = 512,
        context: int = 512,
        d_model: int = 192,
        n_layers: int = 4,
        n_heads: int = 6,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        if d_model % n_heads or (d_model // n_heads) % 2:
            raise ValueError("d_model must split into n_heads heads of even size")
        self.config = {
            "vocab_size": vocab_size,
            "context": context,
            "d_model": d_model,
            "n_layers": n_layers,
            "n_heads": n_heads,
            "dropout": dropout,
        }
        self.context, self.head_dim = context, d_model // n_heads
        self.embed = nn.Embedding(vocab_size, d_model)
        self.blocks = nn.ModuleList(Block(d_model, n_heads, dropout) for _ in range(n_layers))
        self.ln = nn.LayerNorm(d_model)
        self.drop = nn.Dropout(dropout)
        self.apply(self._init)

    @staticmethod
    def _init(m: nn.Module) -> None:
        """GPT-2's small init (the tied head would make unit-variance embeddings explode)."""
        if isinstance(m, nn.Linear | nn.Embedding):
            nn.init.normal_(m.weight, std=0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)

    def forward(
        self, ids: torch.Tensor, cache: list | None = None, start: int = 0
    ) -> tuple[torch.Tensor, list]:
        """Logits of every position; ``cache`` holds the keys/values of ``start`` earlier
        tokens (None: none)."""
        cos, sin = rope_tables(
            torch.arange(start, start + ids.shape[1], device=ids.device), self.head_dim
        )
        x = self.drop(self.embed(ids))
        new_cache = []
        for i, block in enumerate(self.blocks):
            x, kv = block(x, cos, sin, None if cache is None else cache[i])
            new_cache.append(kv)
        return self.ln(x) @ self.embed.weight.T, new_cache

    def numpy_weights(self) -> dict:
        """Every weight as float32 numpy, under the names transformer_numpy.py reads."""
        out = {"embed": self.embed.weight, "ln_w": self.ln.weight, "ln_b": self.ln.bias}
        for i, b in enumerate(self.blocks):
            for name, t in (
                ("ln1_w", b.ln1.weight),
                ("ln1_b", b.ln1.bias),
                ("qkv", b.qkv.weight.T),
                ("proj", b.proj.weight.T),
                ("ln2_w", b.ln2.weight),
                ("ln2_b", b.ln2.bias),
                ("fc1", b.fc1.weight.T),
                ("fc1_b", b.fc1.bias),
                ("fc2", b.fc2.weight.T),
                ("fc2_b", b.fc2.bias),
            ):
                out[f"b{i}.{name}"] = t
        return {k: v.detach().float().cpu().contiguous().numpy() for k, v in out.items()}
