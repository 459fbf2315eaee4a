"""Markov / n-gram baseline over pitches with interpolated Witten-Bell smoothing.

P_0(w) = (c(w) + 1) / (N + 128) (add-one unigram); for a context h of length k >= 1,
P_k(w | h) = (c(h, w) + T(h) * P_{k-1}(w | h')) / (c(h) + T(h)), with T(h) the number of
distinct pitches seen after h and h' the context without its oldest pitch. Unseen contexts
fall back to the shorter one. ``order`` 3 is a trigram (two pitches of context).
Counts are stored per context length as a sorted CSR table, so lookups are vectorised.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from midiml.generate.base import N_PITCHES, Generator, smooth
from midiml.represent.windows import PITCH, EventData


def _keys(ctx: np.ndarray) -> np.ndarray:
    """(B, k) pitches -> (B,) int64 keys (base 128; k <= 8)."""
    weights = N_PITCHES ** np.arange(ctx.shape[1] - 1, -1, -1, dtype=np.int64)
    return (ctx.astype(np.int64) * weights).sum(axis=1)


class MarkovGenerator(Generator):
    def __init__(self, order: int = 3) -> None:
        if not 1 <= order <= 8:
            raise ValueError(f"markov order must be in 1..8, got {order}")
        self.order = int(order)
        self.n_in = max(1, self.order - 1)
        self.unigram = np.ones(N_PITCHES)
        self.tables: list[dict[str, np.ndarray]] = []

    def fit(self, songs: list[np.ndarray]) -> MarkovGenerator:
        """``songs``: pitch sequences (or (N, 4) event streams) of the training songs."""
        pitches = [np.asarray(s)[:, PITCH] if np.ndim(s) == 2 else np.asarray(s) for s in songs]
        pitches = [p.astype(np.int64) for p in pitches if len(p)]
        allp = np.concatenate(pitches) if pitches else np.zeros(0, np.int64)
        self.unigram = np.bincount(allp, minlength=N_PITCHES).astype(np.float64) + 1.0
        self.unigram /= self.unigram.sum()
        self.tables = []
        for k in range(1, self.order):
            ctx_parts, nxt_parts = [], []
            for p in pitches:
                if len(p) > k:
                    ctx_parts.append(np.lib.stride_tricks.sliding_window_view(p, k)[:-1])
                    nxt_parts.append(p[k:])
            if not ctx_parts:
                self.tables.append(
                    {
                        "keys": np.zeros(0, np.int64),
                        "indptr": np.zeros(1, np.int64),
                        "next": np.zeros(0, np.int64),
                        "count": np.zeros(0),
                    }
                )
                continue
            keys = _keys(np.concatenate(ctx_parts))
            nxt = np.concatenate(nxt_parts)
            pair = keys * N_PITCHES + nxt
            uniq, cnt = np.unique(pair, return_counts=True)
            ukeys = uniq // N_PITCHES
            ctx_keys, first = np.unique(ukeys, return_index=True)
            indptr = np.append(first, len(uniq)).astype(np.int64)
            self.tables.append(
                {
                    "keys": ctx_keys,
                    "indptr": indptr,
                    "next": (uniq % N_PITCHES).astype(np.int64),
                    "count": cnt.astype(np.float64),
                }
            )
        return self

    def fit_data(self, data: EventData) -> MarkovGenerator:
        return self.fit([data.song(s) for s in data.songs("train")])

    def next_pitch_proba(self, windows: np.ndarray) -> np.ndarray:
        pitches = np.asarray(windows)[..., PITCH].astype(np.int64)
        b = pitches.shape[0]
        probs = np.tile(self.unigram, (b, 1))
        for k, tab in enumerate(self.tables, start=1):
            if pitches.shape[1] < k or len(tab["keys"]) == 0:
                continue
            q = _keys(pitches[:, -k:])
            pos = np.searchsorted(tab["keys"], q).clip(0, len(tab["keys"]) - 1)
            found = tab["keys"][pos] == q
            rows = np.flatnonzero(found)
            if len(rows) == 0:
                continue
            lo, hi = tab["indptr"][pos[rows]], tab["indptr"][pos[rows] + 1]
            n_types = (hi - lo).astype(np.float64)
            lens = hi - lo
            flat = np.concatenate([np.arange(a, c) for a, c in zip(lo, hi, strict=True)])
            counts = np.zeros((len(rows), N_PITCHES))
            local = np.repeat(np.arange(len(rows)), lens)
            np.add.at(counts, (local, tab["next"][flat]), tab["count"][flat])
            total = counts.sum(axis=1)
            probs[rows] = (counts + n_types[:, None] * probs[rows]) / (total + n_types)[:, None]
        return smooth(probs)

    def save(self, model_dir: Path) -> None:
        arrays = {"unigram": self.unigram, "order": np.array(self.order)}
        for k, tab in enumerate(self.tables, start=1):
            arrays.update({f"{name}_{k}": v for name, v in tab.items()})
        np.savez_compressed(Path(model_dir) / "markov.npz", **arrays)

    @classmethod
    def load_saved(cls, model_dir: Path) -> MarkovGenerator:
        z = np.load(Path(model_dir) / "markov.npz")
        gen = cls(int(z["order"]))
        gen.unigram = z["unigram"]
        gen.tables = [
            {name: z[f"{name}_{k}"] for name in ("keys", "indptr", "next", "count")}
            for k in range(1, gen.order)
        ]
        return gen
