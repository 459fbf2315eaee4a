"""The token Transformer's network: a decoder-only Transformer with rotary positions (RoPE).

Rotary positions make attention depend on the distance between tokens, not on where a
window starts, so "play what came 4 bars ago again" is the same pattern anywhere in the
context: repetition and copying of the prompt are learnable. Pre-norm blocks, GELU (tanh
form, which the numpy runtime computes exactly the same way), no biases in attention, tied
input/output embeddings. ``forward`` can extend a key/value cache (the numpy runtime in
transformer_numpy.py is the same computation; a test holds them equal).

With ``copy`` a pointer-generator head is added (See et al. 2017, as an induction-style
copy): position i attends, with its own small query/key projections of the final hidden
states, over every earlier position j < i and proposes the token that *followed* j there
(``ids[j + 1]``); a learned gate g(h_i) mixes the two: p = g * softmax(vocab logits) +
(1 - g) * copy attention. Music repeats bars, so "play what followed the last time this
context came" is one learned attention away instead of something the whole stack has to
discover from little data. Trained end to end by the same next-token loss; ``forward``
then returns log-probabilities (which cross-entropy and sampling read like logits).

With ``bar_positions`` > 0 each id's embedding gets a learned embedding of where in its bar
the music is after it (0 after a Bar, k + 1 after Position_k; transformer_numpy.Grammar.
bar_positions), like the beat/position embeddings of compound-word and multitrack music
Transformers. REMI positions are absolute within the bar and BPE hides them inside merged
ids; without this input the model spread its next-onset probability over positions already
past, and sampling (which masks those) skipped onsets: half the prompt's notes per bar.
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


class CopyHead(nn.Module):
    """Pointer-generator mixture over the vocabulary and the tokens that followed earlier
    positions (see the module docstring)."""

    def __init__(self, d_model: int, d_copy: int) -> None:
        super().__init__()
        self.d_copy = d_copy
        self.q = nn.Linear(d_model, d_copy, bias=False)
        self.k = nn.Linear(d_model, d_copy, bias=False)
        self.gate = nn.Linear(d_model, 1)

    def parts(
        self,
        h: torch.Tensor,
        ids: torch.Tensor,
        start: int,
        past: tuple[torch.Tensor, torch.Tensor] | None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(copy attention (B, T, n-1), the ids it proposes (B, n-1), gate (B, T, 1), copy
        keys, ids seen) of ``h`` at positions start..start+T-1."""
        t = h.shape[1]
        keys, seen = self.k(h), ids
        if past is not None and past[0].shape[1]:
            keys, seen = torch.cat([past[0], keys], 1), torch.cat([past[1], ids], 1)
        n = keys.shape[1]
        scores = self.q(h) @ keys[:, : n - 1].transpose(1, 2) / self.d_copy**0.5  # (B, T, n-1)
        rows = start + torch.arange(t, device=h.device)
        valid = torch.arange(n - 1, device=h.device)[None, :] < rows[:, None]  # j < i
        scores = scores.float().masked_fill(~valid, float("-inf"))
        has = valid.any(1)  # position 0 has nothing to copy from
        att = torch.where(has[None, :, None], scores.softmax(-1).nan_to_num(0.0), 0.0)
        g = torch.sigmoid(self.gate(h).float())
        g = torch.where(has[None, :, None], g, torch.ones_like(g))
        return att, seen[:, 1:n], g, keys, seen

    def forward(
        self,
        h: torch.Tensor,
        ids: torch.Tensor,
        logits: torch.Tensor,
        start: int,
        past: tuple[torch.Tensor, torch.Tensor] | None,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """log p (B, T, V) of the mixture, and the copy keys and ids of all positions so far."""
        att, src, g, keys, seen = self.parts(h, ids, start, past)
        b, t = att.shape[:2]
        p_copy = torch.zeros(b, t, logits.shape[-1], device=h.device, dtype=torch.float32)
        p_copy = p_copy.scatter_add(2, src[:, None, :].expand(b, t, src.shape[1]), att)
        p = g * logits.float().softmax(-1) + (1 - g) * p_copy
        return torch.log(p + 1e-9), (keys, seen)

    def target_log_prob(
        self, h: torch.Tensor, ids: torch.Tensor, logits: torch.Tensor, targets: torch.Tensor
    ) -> torch.Tensor:
        """log p(targets) (B, T) of the mixture without building the (B, T, V) copy
        distribution (training: a (B, T, T) comparison instead of a scatter over the vocab)."""
        att, src, g, _, _ = self.parts(h, ids, 0, None)
        p_vocab = logits.float().log_softmax(-1).gather(-1, targets[..., None]).exp()
        hit = (src[:, None, :] == targets[..., None]).to(att.dtype)
        p_copy = (att * hit).sum(-1, keepdim=True)
        return torch.log(g * p_vocab + (1 - g) * p_copy + 1e-9)[..., 0]


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
        copy: bool = False,
        d_copy: int = 64,
        bar_positions: int = 0,
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
            "copy": bool(copy),
            "d_copy": int(d_copy),
            "bar_positions": int(bar_positions),
        }
        self.context, self.head_dim = context, d_model // n_heads
        self.embed = nn.Embedding(vocab_size, d_model)
        self.bar_embed = nn.Embedding(bar_positions, d_model) if bar_positions else None
        self.blocks = nn.ModuleList(Block(d_model, n_heads, dropout) for _ in range(n_layers))
        self.ln = nn.LayerNorm(d_model)
        self.drop = nn.Dropout(dropout)
        self.copy = CopyHead(d_model, d_copy) if copy else None
        self.apply(self._init)

    @staticmethod
    def _init(m: nn.Module) -> None:
        """GPT-2's small init (the tied head would make unit-variance embeddings explode)."""
        if isinstance(m, nn.Linear | nn.Embedding):
            nn.init.normal_(m.weight, std=0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)

    def _embed(self, ids: torch.Tensor, bars: torch.Tensor | None) -> torch.Tensor:
        x = self.embed(ids)
        if self.bar_embed is not None:
            if bars is None:
                raise ValueError("this network reads bar positions beside the ids")
            x = x + self.bar_embed(bars)
        return self.drop(x)

    def forward(
        self,
        ids: torch.Tensor,
        cache: list | None = None,
        start: int = 0,
        bars: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, list]:
        """Logits (log-probabilities with the copy head) of every position; ``cache`` holds
        the keys/values of ``start`` earlier tokens (None: none), and with the copy head its
        last entry holds their copy keys and ids. ``bars``: the ids' bar positions (B, T),
        needed when the network has ``bar_positions``."""
        cos, sin = rope_tables(
            torch.arange(start, start + ids.shape[1], device=ids.device), self.head_dim
        )
        x = self._embed(ids, bars)
        new_cache = []
        for i, block in enumerate(self.blocks):
            x, kv = block(x, cos, sin, None if cache is None else cache[i])
            new_cache.append(kv)
        h = self.ln(x)
        logits = h @ self.embed.weight.T
        if self.copy is None:
            return logits, new_cache
        past = None if cache is None or len(cache) <= len(self.blocks) else cache[-1]
        logp, copy_cache = self.copy(h, ids, logits, start, past)
        return logp, [*new_cache, copy_cache]

    def nll(
        self,
        ids: torch.Tensor,
        targets: torch.Tensor,
        ignore: int,
        bars: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Mean negative log-likelihood (nats) of ``targets`` (B, T) after ``ids`` (B, T)
        (``bars``: their bar positions), targets equal to ``ignore`` left out (the loss)."""
        if self.copy is None:
            logits, _ = self(ids, bars=bars)
            flat = logits.reshape(-1, logits.shape[-1]).float()
            return F.cross_entropy(flat, targets.reshape(-1), ignore_index=ignore)
        cos, sin = rope_tables(torch.arange(ids.shape[1], device=ids.device), self.head_dim)
        x = self._embed(ids, bars)
        for block in self.blocks:
            x, _ = block(x, cos, sin, None)
        h = self.ln(x)
        logp = self.copy.target_log_prob(h, ids, h @ self.embed.weight.T, targets)
        keep = targets != ignore
        return -(logp * keep).sum() / keep.sum().clamp_min(1)

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
        if self.bar_embed is not None:
            out["bar_embed"] = self.bar_embed.weight
        if self.copy is not None:
            out |= {
                "copy_q": self.copy.q.weight.T,
                "copy_k": self.copy.k.weight.T,
                "copy_gate": self.copy.gate.weight.T,
                "copy_gate_b": self.copy.gate.bias,
            }
        return {k: v.detach().float().cpu().contiguous().numpy() for k, v in out.items()}
