"""Inference of the token Transformer in plain numpy: KV cache, batched variations, valid
token successions, multi-instrument continuations. No torch (importing it costs 1-2 s).

``NumpyTransformer`` is the forward pass of transformer_network.TransformerNetwork on the
weights exported at training time (``weights.npz``); a test holds its logits and sampled
tokens equal to torch's. ``TransformerContinuer`` turns a prompt (a notes table of all its
tracks) into REMI/BPE ids, samples every variation as one batch, and decodes the new ids
into notes of the prompt's instruments on the prompt's clock.

Sampling masks, per step and per variation, every token whose first base token may not
follow the previous token's last (REMI grammar), that would go back in time within a bar,
start a note before the prompt's end, or play an instrument (program) the prompt does not
have; genre, BOS, EOS and PAD are never drawn. Each new bar starts with its plan tokens
(tokens.py: notes and notes per onset), drawn by the model (``plan="free"``) or held at the
prompt's recent bars' (``plan="held"``, a user control). Decoding keeps one note of an instrument
per pitch and onset: its new track would play a repeat as the same note (sampled freely,
39 % of the validation continuations' notes were such repeats; masking them in sampling
instead turned the model's stuck chords into clusters: lower harmony, benchmarks/
token_diagnosis.py).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from midiml.generate.base import write_meta
from midiml.represent import tokens as tk

WEIGHTS = "weights.npz"
TOKENIZER = "tokenizer.json"
RETRIES = 3  # draws of a variation that came out without any note
# Decoding chosen on validation cuts (docs/continuation.md, "what the token model loses"):
# min-p cuts the flat tail of the pitch distribution; prompt guidance weighs each step by
# how much more likely the prompt makes it than the model alone would (contrastive /
# classifier-free guidance on the prompt).
MIN_P = 0.2
PROMPT_GUIDANCE = 0.5
# Bar plans (tokens.py): "free" = the model writes each new bar's plan itself; "held" = every
# new bar's plan is the median of the prompt's last HELD_BARS bars' (a user control, like
# MIDI-GPT's density / polyphony settings; a rule from the prompt, not the model's reading)
PLAN_MODES = ("free", "held")
BAR_POSITIONS = 33  # 0 after a Bar, k + 1 after Position_k (32 positions a bar)
# Plan state beside the bar position: 0 = the bar's notes are in its planned range (or no
# plan), 1..7 = notes still missing, at least 1, 2, 3, 4, 6, 9, 13; 8 = more than planned.
REMAINING_BOUNDS = (1, 2, 3, 4, 6, 9, 13)
PLAN_STATES = len(REMAINING_BOUNDS) + 2
HELD_BARS = 4
NOTE_OUT = ("pitch", "velocity", "onset_s", "duration_s", "program", "is_drum")


def _layer_norm(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + 1e-5) * w + b


def _gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + np.tanh(np.float32(math.sqrt(2.0 / math.pi)) * (x + 0.044715 * x**3)))


class NumpyTransformer:
    """TransformerNetwork's forward pass (float32) with a preallocated key/value cache."""

    def __init__(self, weights: Mapping[str, np.ndarray], config: Mapping[str, Any]) -> None:
        self.w = {k: np.asarray(v, np.float32) for k, v in weights.items()}
        self.n_layers, self.n_heads = int(config["n_layers"]), int(config["n_heads"])
        self.d_model, self.context = int(config["d_model"]), int(config["context"])
        self.head_dim = self.d_model // self.n_heads
        self.vocab_size = int(config["vocab_size"])
        self.inv_freq = (
            10_000.0 ** (-np.arange(0, self.head_dim, 2, dtype=np.float32) / self.head_dim)
        ).astype(np.float32)
        self.head = np.ascontiguousarray(self.w["embed"].T)
        self.copy = bool(config.get("copy", False))
        self.d_copy = int(config.get("d_copy", 0))
        self.bar_embed = self.w.get("bar_embed")  # None: a network without bar positions

    def new_cache(self, batch: int, length: int) -> list[np.ndarray]:
        """Per layer one (2, B, H, length, head_dim) array of keys and values; with the copy
        head also (1, B, length, d_copy) copy keys and (1, B, length) ids (batch on axis 1
        everywhere, so variations repeat one cache with ``np.repeat(c, n, axis=1)``)."""
        shape = (2, batch, self.n_heads, length, self.head_dim)
        cache = [np.zeros(shape, np.float32) for _ in range(self.n_layers)]
        if self.copy:
            cache += [
                np.zeros((1, batch, length, self.d_copy), np.float32),
                np.zeros((1, batch, length), np.int64),
            ]
        return cache

    def _rope(self, x: np.ndarray, start: int) -> np.ndarray:
        pos = np.arange(start, start + x.shape[2], dtype=np.float32)
        ang = pos[:, None] * self.inv_freq[None]
        cos, sin = np.cos(ang), np.sin(ang)
        a, b = x[..., : self.head_dim // 2], x[..., self.head_dim // 2 :]
        return np.concatenate([a * cos - b * sin, a * sin + b * cos], axis=-1)

    def forward(
        self,
        ids: np.ndarray,
        cache: list[np.ndarray],
        start: int,
        bars: np.ndarray | None = None,
    ) -> np.ndarray:
        """Logits (B, T, V) of ``ids`` (B, T) at positions start..start+T-1 (``bars``: their
        bar positions, read when the network has them); their keys and values are written
        into ``cache`` (which holds ``start`` earlier ones)."""
        w, h, hd = self.w, self.n_heads, self.head_dim
        bsz, t = ids.shape
        x = w["embed"][ids]
        if self.bar_embed is not None:
            if bars is None:
                raise ValueError("this network reads bar positions beside the ids")
            x = x + self.bar_embed[np.asarray(bars, np.int64)]
        end = start + t
        mask = None
        if t > 1:
            mask = np.arange(end)[None, :] > (start + np.arange(t))[:, None]
        for i in range(self.n_layers):
            p = f"b{i}."
            qkv = _layer_norm(x, w[p + "ln1_w"], w[p + "ln1_b"]) @ w[p + "qkv"]
            qkv = qkv.reshape(bsz, t, 3, h, hd).transpose(2, 0, 3, 1, 4)
            q, k = self._rope(qkv[0], start), self._rope(qkv[1], start)
            cache[i][0, :, :, start:end] = k
            cache[i][1, :, :, start:end] = qkv[2]
            keys, values = cache[i][0, :, :, :end], cache[i][1, :, :, :end]
            s = (q @ keys.transpose(0, 1, 3, 2)) / np.float32(math.sqrt(hd))
            if mask is not None:
                s = np.where(mask, np.float32(-np.inf), s)
            s = np.exp(s - s.max(-1, keepdims=True))
            att = (s / s.sum(-1, keepdims=True)) @ values
            x = x + att.transpose(0, 2, 1, 3).reshape(bsz, t, self.d_model) @ w[p + "proj"]
            y = _layer_norm(x, w[p + "ln2_w"], w[p + "ln2_b"]) @ w[p + "fc1"] + w[p + "fc1_b"]
            x = x + _gelu(y) @ w[p + "fc2"] + w[p + "fc2_b"]
        h = _layer_norm(x, w["ln_w"], w["ln_b"])
        logits = h @ self.head
        return self._copy(h, ids, logits, cache, start) if self.copy else logits

    def _copy(self, h, ids, logits, cache, start) -> np.ndarray:
        """The copy head's log-probabilities (transformer_network.CopyHead)."""
        w, end = self.w, start + ids.shape[1]
        bsz, t = ids.shape
        keys, seen = cache[self.n_layers], cache[self.n_layers + 1]
        keys[0, :, start:end] = h @ w["copy_k"]
        seen[0, :, start:end] = ids
        n = end - 1  # positions j that have a following token
        s = (
            (h @ w["copy_q"])
            @ keys[0, :, :n].transpose(0, 2, 1)
            / np.float32(math.sqrt(self.d_copy))
        )
        valid = np.arange(n)[None, :] < (start + np.arange(t))[:, None]
        s = np.where(valid, s, np.float32(-np.inf))
        has = valid.any(1)
        s = np.exp(s - np.where(has[:, None], s.max(-1, keepdims=True), 0.0))
        att = np.where(has[:, None], s / np.maximum(s.sum(-1, keepdims=True), 1e-30), 0.0)
        p_copy = np.zeros(logits.shape, np.float32)
        src = np.broadcast_to(seen[0, :, None, 1 : n + 1], (bsz, t, n))
        bi = np.broadcast_to(np.arange(bsz)[:, None, None], src.shape)
        ti = np.broadcast_to(np.arange(t)[None, :, None], src.shape)
        np.add.at(p_copy, (bi, ti, src), att.astype(np.float32))
        g = 1.0 / (1.0 + np.exp(-(h @ w["copy_gate"] + w["copy_gate_b"])))
        g = np.where(has[None, :, None], g, np.float32(1.0))
        z = np.exp(logits - logits.max(-1, keepdims=True))
        p = g * (z / z.sum(-1, keepdims=True)) + (1 - g) * p_copy
        return np.log(p + np.float32(1e-9)).astype(np.float32)


class Grammar:
    """What each model id does to the REMI state, and which ids may follow which."""

    def __init__(self, tokenizer: Any, n_genres: int) -> None:
        self.types, self.values = tk.base_vocab_table(tokenizer)
        self.res = tk.positions_per_beat(tokenizer)
        self.expand = tk.expansions(tokenizer)
        n = len(self.expand) + n_genres
        self.first_type = np.full(n, tk.SPECIAL, np.int64)
        self.last_type = np.full(n, tk.SPECIAL, np.int64)
        self.first_pos = np.full(n, -1, np.int64)  # first Position before any Bar (-1: none)
        self.n_bars = np.zeros(n, np.int64)
        self.end_pos = np.full(n, -2, np.int64)  # position after the token (-2: unchanged)
        self.programs = np.zeros((n, 129), bool)  # programs the token plays (index program+1)
        for i, base in enumerate(self.expand):
            if not base:  # stands for no base token: never drawn
                continue
            t = self.types[base]
            self.first_type[i], self.last_type[i] = t[0], t[-1]
            bars = np.flatnonzero(t == tk.BAR)
            self.n_bars[i] = len(bars)
            pos = np.flatnonzero(t == tk.POSITION)
            before = pos[pos < bars[0]] if len(bars) else pos
            if len(before):
                self.first_pos[i] = self.values[base[before[0]]]
            after = pos[pos > bars[-1]] if len(bars) else pos
            if len(after):
                self.end_pos[i] = self.values[base[after[-1]]]
            elif len(bars):
                self.end_pos[i] = -1
            progs = self.values[np.asarray(base)[(t == tk.PROGRAM) | (t == tk.DRUM_PROGRAM)]]
            self.programs[i, progs + 1] = True
        # ids that strike a note at the current onset (a Program before any Position or Bar)
        self.note_here = np.zeros(n, bool)
        for i, base in enumerate(self.expand):
            for t in self.types[base] if base else ():
                if t in (tk.BAR, tk.POSITION):
                    break
                if t in (tk.PROGRAM, tk.DRUM_PROGRAM):
                    self.note_here[i] = True
                    break
        self.special = self.first_type == tk.SPECIAL
        # bucket of the bar plan token an id is (-1: none; plan ids are never merged)
        self.plan = np.full((2, n), -1, np.int64)
        for row, kind in enumerate((tk.BAR_NOTES, tk.BAR_POLY)):
            at = np.flatnonzero(self.first_type == kind)
            self.plan[row, at] = [self.values[self.expand[i][0]] for i in at]
        self.follows = np.zeros((len(tk.BASE_TYPES), n), bool)
        for prev, allowed in tk.next_types(self.types).items():
            self.follows[prev] = np.isin(self.first_type, list(allowed)) & ~self.special
        # notes each id writes (Duration tokens), and the note range of each BarNotes id
        self.n_notes = np.array([int((self.types[e] == tk.DURATION).sum()) for e in self.expand])
        self.n_notes = np.r_[self.n_notes, np.zeros(n - len(self.expand), np.int64)]
        # ids that leave a note begun (Position, Program, Pitch or Velocity without its Duration)
        note_open = [tk.POSITION, tk.PROGRAM, tk.DRUM_PROGRAM, tk.PITCH, tk.PITCH_DRUM, tk.VELOCITY]
        self.opens_note = np.isin(self.last_type, note_open)
        self.note_adds = self.n_notes + self.opens_note  # notes an id writes or begins
        bounds = np.r_[tk.BAR_NOTES_BOUNDS, np.iinfo(np.int64).max]
        has = self.plan[0] >= 0
        self.plan_lo = np.where(has, bounds[np.maximum(self.plan[0], 0)], -1)
        self.plan_hi = np.where(has, bounds[np.maximum(self.plan[0], 0) + 1] - 1, -1)
        self.has_plans = bool(has.any())
        self.plan_states = PLAN_STATES if self.has_plans else 1
        self.n_bar_inputs = BAR_POSITIONS * self.plan_states

    def base_ids(self, ids: list[int]) -> list[int]:
        return [b for i in ids for b in self.expand[i]]

    def plan_track(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(lowest, highest planned notes, notes written) of the current bar after each id:
        the last BarNotes id's range (-1 before any) and the notes since it."""
        ids = np.asarray(ids, np.int64)
        at = np.arange(len(ids))
        last = np.maximum.accumulate(np.where(self.plan_lo[ids] >= 0, at, -1))
        cum = np.cumsum(self.n_notes[ids])
        plan_id = ids[np.maximum(last, 0)]
        seen = last >= 0
        lo = np.where(seen, self.plan_lo[plan_id], -1)
        hi = np.where(seen, self.plan_hi[plan_id], -1)
        count = cum - np.where(seen, cum[np.maximum(last, 0)], 0)
        return lo, hi, count

    def plan_state(self, lo: np.ndarray, hi: np.ndarray, count: np.ndarray) -> np.ndarray:
        """0 inside the bar's planned range (or no plan yet), 1..7 notes still missing (in
        ``REMAINING_BOUNDS`` buckets), 8 past the range."""
        missing = np.searchsorted(REMAINING_BOUNDS, np.asarray(lo) - np.asarray(count), "right")
        state = np.where(np.asarray(count) > np.asarray(hi), PLAN_STATES - 1, missing)
        return np.where(np.asarray(lo) < 0, 0, state)

    def bar_input(self, position: np.ndarray, state: np.ndarray) -> np.ndarray:
        """The network's bar input: position in the bar (0-32) x plan state."""
        return np.asarray(position) * self.plan_states + np.asarray(state)

    def bar_positions(self, ids: np.ndarray) -> np.ndarray:
        """Where in its bar the music is after each id: 0 right after a Bar (or a special
        token: a song's start), k + 1 after Position_k. The network's input beside the ids
        (``net.bar_positions``): without it the model had to find the last Position inside
        merged BPE ids, and it put 40 % of its onset mass on positions already past
        (benchmarks/token_diagnosis.py --bar-positions), so masked sampling skipped onsets and
        continuations had half the prompt's notes per bar. With bar plans it is combined with
        the plan state (``bar_input``): how many of the planned notes the bar still misses,
        so the model can see when its bar is complete (it did not read the plan tokens
        alone: docs/continuation.md)."""
        ids = np.asarray(ids, np.int64)
        end = np.where(self.special[ids], -1, self.end_pos[ids])
        idx = np.maximum.accumulate(np.where(end >= -1, np.arange(len(ids)), -1))
        position = np.where(idx >= 0, end[np.maximum(idx, 0)], -1) + 1
        if not self.has_plans:
            return position
        return self.bar_input(position, self.plan_state(*self.plan_track(ids)))


class OnsetNotes:
    """Per variation, the (program, pitch) notes struck at the current onset, and whether the
    onset is closed: an instrument struck a pitch it already has there. The model then loops
    through the chord it just wrote (the copy head proposes what followed the same note a
    moment ago): up to 226 notes at one onset, one validation continuation spent its whole
    step budget there and stopped 10 beats early. Its repeat is taken as "this chord is
    complete": no id drawn after it adds a note at this onset, the next one moves on in time
    (a BPE id that merges several notes finishes its own). The repeated note itself is
    dropped in decoding (``_struck_again``)."""

    def __init__(self, grammar: Grammar, n: int) -> None:
        self.g = grammar
        self.notes: list[set[tuple[int, int]]] = [set() for _ in range(n)]
        self.program = [0] * n
        self.closed = np.zeros(n, bool)

    def update(self, tok: np.ndarray) -> None:
        g = self.g
        for b, i in enumerate(tok):
            for base in g.expand[int(i)] if int(i) < len(g.expand) else ():
                t, v = int(g.types[base]), int(g.values[base])
                if t in (tk.BAR, tk.POSITION):
                    self.notes[b].clear()
                    self.closed[b] = False
                elif t in (tk.PROGRAM, tk.DRUM_PROGRAM):
                    self.program[b] = v
                elif t in (tk.PITCH, tk.PITCH_DRUM):
                    key = (self.program[b], v)
                    self.closed[b] |= key in self.notes[b]
                    self.notes[b].add(key)


class TransformerContinuer:
    """The trained token Transformer behind ``continue_song`` and ``continue_notes``."""

    kind = "transformer"
    n_in = 1
    applies_guards = (
        False  # samples the model's own distribution; the guards are window-model options
    )

    def __init__(
        self,
        weights: Mapping[str, np.ndarray],
        network: Mapping[str, Any],
        tokenizer: Any,
        genres: list[str],
        guards: Any = None,
        top_k: int = 0,
        close_repeats: bool = True,
        min_p: float = MIN_P,
        prompt_guidance: float = PROMPT_GUIDANCE,
        plan: str = "free",
        realise_plans: bool = True,
    ) -> None:
        self.net = NumpyTransformer(weights, network)
        self.tokenizer, self.genres = tokenizer, list(genres)
        self.grammar = Grammar(tokenizer, len(self.genres))
        self.guards, self.top_k = guards, top_k  # guards: the token model samples unguarded
        self.default_genre = self.genres[0] if self.genres else None
        self.bos = tokenizer.vocab["BOS_None"]
        self.close_repeats = close_repeats  # an onset ends when an instrument repeats a pitch
        # shares of the context the prompt fills at the start and a full window keeps when it
        # slides (the rest is room for new ids before the next slide)
        self.prompt_share, self.keep_share = 0.75, 0.5
        self.min_p, self.prompt_guidance = min_p, prompt_guidance
        self.set_plan(plan)
        self.realise_plans = realise_plans  # each bar's notes stay inside its own plan

    def set_plan(self, plan: str) -> None:
        """How new bars get their plan tokens: ``PLAN_MODES``."""
        if plan not in PLAN_MODES:
            raise ValueError(f"plan must be one of {', '.join(PLAN_MODES)}, not {plan!r}")
        self.plan = plan

    @classmethod
    def load(
        cls, model_dir: str | Path, guards: Any = None, top_k: int = 0
    ) -> TransformerContinuer:
        model_dir = Path(model_dir)
        meta = json.loads((model_dir / "meta.json").read_text())
        tokenizer, genres = tk.load_tokenizer(model_dir / meta["tokenizer"])
        with np.load(model_dir / meta["weights"]) as z:
            weights = {k: z[k] for k in z.files}
        return cls(weights, meta["network"], tokenizer, genres, guards, top_k)

    # -- the prompt ---------------------------------------------------------------------
    def genre_id(self, genre: str | None) -> int:
        genre = genre or self.default_genre
        if genre not in self.genres:
            raise ValueError(f"unknown genre {genre!r}; this model knows {', '.join(self.genres)}")
        return len(self.grammar.expand) + self.genres.index(genre)

    # -- sampling -----------------------------------------------------------------------
    def sample(
        self,
        prompt: list[int],
        genre_id: int,
        start_beat: float,
        end_beat: float,
        programs: np.ndarray,
        n: int,
        temperature: float,
        top_p: float,
        seed: int,
    ) -> list[list[int]]:
        """``n`` continuations of ``prompt`` (model ids, beats from its first bar), sampled as
        one batch until every one places a note at or after ``end_beat``."""
        g, net = self.grammar, self.net
        ctx = net.context
        state = self._state(prompt)  # of the whole prompt: bars count from its first
        full = list(prompt)
        prompt = full[-int(ctx * self.prompt_share) :]
        bar = np.full(n, state[0], np.int64)
        pos = np.full(n, state[1], np.int64)
        last = np.full(n, state[2], np.int64)
        prog_ok = ~(g.programs & ~programs[None]).any(1)
        if self.plan == "held":
            prog_ok &= self.held_plan_ok(full)
        rng = np.random.default_rng(seed)
        seqs: list[list[int]] = [[] for _ in range(n)]
        stop = np.full(n, -1, np.int64)
        window = [genre_id, *prompt]
        # bar positions of the whole prompt (a window cut mid-bar still knows where it is)
        prompt_bars = list(g.bar_positions(np.asarray([genre_id, *full], np.int64))[1:])
        prompt_bars = prompt_bars[len(full) - len(prompt) :]
        bars: list[list[int]] = [[] for _ in range(n)]
        lo, hi, count = (np.full(n, v[-1]) for v in g.plan_track(np.asarray(full, np.int64)))
        cache = net.new_cache(1, ctx)
        logits = net.forward(np.asarray([window]), cache, 0, np.asarray([[0, *prompt_bars]]))[:, -1]
        cache = [np.repeat(c, n, axis=1) for c in cache]
        used = len(window)
        onset = OnsetNotes(g, n)
        w_cfg = self.prompt_guidance
        if w_cfg:  # the same model without the prompt: genre, BOS and the new ids only
            ucache = net.new_cache(n, ctx)
            start = np.asarray([[genre_id, self.bos]] * n)
            ulogits = net.forward(start, ucache, 0, np.zeros((n, 2), np.int64))[:, -1]
            uused = 2
        for step in range(self.step_budget(start_beat, end_beat)):
            logits = np.broadcast_to(logits, (n, logits.shape[-1]))
            if w_cfg:
                cond = _log_softmax(logits)
                guided = cond + w_cfg * (cond - _log_softmax(ulogits))
            allowed = self._allowed(bar, pos, last, start_beat, prog_ok)
            if self.close_repeats:
                allowed &= ~(onset.closed[:, None] & g.note_here[None])
            if self.realise_plans:
                allowed = self._within_plan(allowed, lo, hi, count)
            tok = self._draw(guided if w_cfg else logits, allowed, temperature, top_p, rng)
            onset.update(tok)
            for b in range(n):
                seqs[b].append(int(tok[b]))
            bar = bar + g.n_bars[tok]
            pos = np.where(
                g.end_pos[tok] >= -1, g.end_pos[tok], np.where(g.n_bars[tok] > 0, -1, pos)
            )
            last = g.last_type[tok]
            new_plan = g.plan_lo[tok] >= 0
            lo = np.where(new_plan, g.plan_lo[tok], lo)
            hi = np.where(new_plan, g.plan_hi[tok], hi)
            count = np.where(new_plan, 0, count + g.n_notes[tok])
            at_bar = g.bar_input(pos + 1, g.plan_state(lo, hi, count))
            for b in range(n):
                bars[b].append(int(at_bar[b]))
            past = bar * tk.BEATS_PER_BAR + np.maximum(pos, 0) / g.res >= end_beat
            stop = np.where((stop < 0) & past, step + 1, stop)
            if (stop >= 0).all():
                break
            if w_cfg:
                if uused >= ctx:
                    ulogits, ucache, uused = self._slide(genre_id, [], [], seqs, bars)
                else:
                    ulogits = net.forward(tok[:, None], ucache, uused, at_bar[:, None])[:, -1]
                    uused += 1
            if used >= ctx:
                logits, cache, used = self._slide(genre_id, prompt, prompt_bars, seqs, bars)
                continue
            logits = net.forward(tok[:, None], cache, used, at_bar[:, None])[:, -1]
            used += 1
        return [s[: stop[b]] if stop[b] >= 0 else s for b, s in enumerate(seqs)]

    def _slide(self, genre_id, head, head_bars, seqs, bars) -> tuple[np.ndarray, list, int]:
        """A full window slides: a fresh cache holds the genre id and each variation's last
        ``keep_share`` of ``head + its new ids`` (with their bar inputs). Returns (the last
        logits, the cache, the ids it holds)."""
        keep = int(self.net.context * self.keep_share)
        ids = np.asarray([[genre_id, *([*head, *s][-keep:])] for s in seqs])
        at = np.asarray([[0, *([*head_bars, *b][-keep:])] for b in bars])
        cache = self.net.new_cache(len(seqs), self.net.context)
        return self.net.forward(ids, cache, 0, at)[:, -1], cache, ids.shape[1]

    def held_plan(self, ids: list[int]) -> tuple[int, int] | None:
        """(notes bucket, notes-per-onset bucket): the medians (rounded half up) of the last
        ``HELD_BARS`` bar plans in ``ids``; None without plans."""
        plan = self.grammar.plan[:, np.asarray(ids, np.int64)]
        notes, poly = plan[0][plan[0] >= 0], plan[1][plan[1] >= 0]
        if not len(notes) or not len(poly):
            return None
        return tuple(int(np.floor(np.median(v[-HELD_BARS:]) + 0.5)) for v in (notes, poly))

    def held_plan_ok(self, ids: list[int]) -> np.ndarray:
        """Per id: not a plan token other than the held plan of ``ids`` (all True without)."""
        held = self.held_plan(ids)
        plan = self.grammar.plan
        if held is None:
            return np.ones(plan.shape[1], bool)
        return ((plan[0] < 0) | (plan[0] == held[0])) & ((plan[1] < 0) | (plan[1] == held[1]))

    @staticmethod
    def step_budget(start_beat: float, end_beat: float) -> int:
        """Most ids drawn for a span: 48 per beat (a 6-note chord every 8th note, unmerged)
        and a bar more. Validation continuations use under a tenth of it
        (benchmarks/token_diagnosis.py --density), so it never cuts one short."""
        return int((end_beat - start_beat + 4) * 48) + 64

    def _state(self, ids: list[int]) -> tuple[int, int, int]:
        """(bar index, position in the bar, type of the last base token) after ``ids``."""
        g = self.grammar
        bar, pos, last = -1, -1, tk.SPECIAL
        for b in g.base_ids(ids):
            t = int(g.types[b])
            if t == tk.BAR:
                bar, pos = bar + 1, -1
            elif t == tk.POSITION:
                pos = int(g.values[b])
            last = t
        return bar, pos, last

    def _allowed(self, bar, pos, last, start_beat, prog_ok) -> np.ndarray:
        g = self.grammar
        ok = g.follows[last] & prog_ok[None]
        fp = g.first_pos[None]
        ok &= (fp < 0) | (fp > pos[:, None])
        onset_ok = (fp < 0) | (bar[:, None] * tk.BEATS_PER_BAR + fp / g.res >= start_beat - 1e-9)
        here = bar * tk.BEATS_PER_BAR + np.maximum(pos, 0) / g.res >= start_beat - 1e-9
        chord = (g.first_type == tk.PROGRAM) | (g.first_type == tk.DRUM_PROGRAM)
        onset_ok &= ~chord[None] | here[:, None]
        strict = ok & onset_ok
        return np.where(strict.any(1, keepdims=True), strict, ok)

    def _within_plan(self, allowed, lo, hi, count) -> np.ndarray:
        """Only ids that keep each bar's notes consistent with its own plan token: no new
        plan (which ends the bar) while the bar has fewer notes than its ``BarNotes`` bucket,
        and no id whose notes take it past the bucket. Every training bar satisfies this by
        construction, so a bar that breaks it is a succession the model never saw; unmasked,
        the model ended 56 % of its bars short of the plan it had just written
        (docs/continuation.md). A note counts once its Duration is written; an id that leaves
        a note begun counts it already, so the bar never starts a note it may not finish. A
        row left with nothing keeps its unconstrained ids."""
        g = self.grammar
        planned = lo[:, None] >= 0
        ends_bar = g.plan_lo[None] >= 0
        short = planned & (count[:, None] < lo[:, None]) & ends_bar
        adds = g.note_adds[None]
        over = planned & (adds > 0) & (count[:, None] + adds > hi[:, None])
        strict = allowed & ~short & ~over
        return np.where(strict.any(1, keepdims=True), strict, allowed)

    def _draw(self, logits, allowed, temperature, top_p, rng) -> np.ndarray:
        """One token per row: masked, tempered, nucleus (top-p), min-p and top-k sampling."""
        z = np.where(allowed, logits.astype(np.float64), -np.inf)
        if temperature <= 0:
            return z.argmax(1)
        z = z / temperature
        p = np.exp(z - z.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        order = np.argsort(-p, axis=1, kind="stable")
        sp = np.take_along_axis(p, order, 1)
        cum = np.cumsum(sp, 1)
        keep = (cum - sp) < (top_p if 0 < top_p < 1 else 1.0)
        if self.min_p > 0:  # min-p: drop ids under min_p x the likeliest one's probability
            keep &= sp >= self.min_p * sp[:, :1]
        if self.top_k:
            keep[:, self.top_k :] = False
        keep[:, 0] = True
        sp = np.where(keep, sp, 0.0)
        cdf = np.cumsum(sp, 1)
        u = rng.random(len(p))[:, None] * cdf[:, -1:]
        idx = np.minimum((cdf < u).sum(1), sp.shape[1] - 1)
        return order[np.arange(len(p)), idx]

    # -- the public interface -----------------------------------------------------------
    def continue_songs(
        self,
        prompt_notes: Mapping[str, np.ndarray],
        seconds: float,
        n: int = 1,
        temperature: float = 1.0,
        top_p: float = 0.95,
        seed: int = 0,
        genre: str | None = None,
    ) -> list[dict[str, np.ndarray]]:
        """``n`` variations (one batch) of ``continue_song``."""
        from threadpoolctl import threadpool_limits

        # one BLAS thread: at these sizes (one token per step) extra threads only spin;
        # measured: 0.24 CPU-s instead of 1.23 for 20 s of a 4-track continuation
        with threadpool_limits(limits=1):
            return self._continue_songs(prompt_notes, seconds, n, temperature, top_p, seed, genre)

    def _continue_songs(self, prompt_notes, seconds, n, temperature, top_p, seed, genre):
        cols = _prompt_columns(prompt_notes)
        if len(cols["pitch"]) == 0:
            raise ValueError("the prompt has no notes to continue")
        gid = self.genre_id(genre)
        clock = BeatClock(cols["onset_beats"], cols["onset_s"])
        offset = math.floor(float(cols["onset_beats"].min()) / tk.BEATS_PER_BAR) * tk.BEATS_PER_BAR
        rel = dict(cols, onset_beats=cols["onset_beats"] - offset)
        # the prompt is taken to end at the bar line after its last onset (a prompt of whole
        # bars, as the evaluation's cuts and most files are): new notes start there, under a
        # note still held, as music does. Waiting for the longest note to end silenced the
        # first beat or two after every cut with a held note; starting right after the last
        # onset filled the prompt's own last bar (benchmarks/token_diagnosis.py)
        last = float(rel["onset_beats"].max())
        start_beat = (math.floor(last / tk.BEATS_PER_BAR + 1e-9) + 1) * tk.BEATS_PER_BAR
        end_beat = clock.beats(clock.seconds(start_beat + offset) + seconds) - offset
        score = tk.notes_to_score(rel, 0, self.tokenizer.config.pitch_range)
        base = tk.base_ids(self.tokenizer, score)
        ids = [int(i) for i in tk.bpe_encode(self.tokenizer, [base])[0]]
        programs = np.zeros(129, bool)
        programs[np.where(cols["is_drum"], -1, cols["program"]).astype(np.int64) + 1] = True
        out: list[dict[str, np.ndarray] | None] = [None] * n
        # a variation without notes is drawn again, and so is one whose only notes are drums
        # when the prompt has pitched ones (its music would stop: a 1.9 s validation cut got
        # one drum note and nothing else)
        pitched = not cols["is_drum"].all()
        for attempt in range(RETRIES + 1):
            todo = [i for i, o in enumerate(out) if o is None or _silent(o, pitched)]
            if not todo:
                break
            seqs = self.sample(
                [self.bos, *ids], gid, start_beat, end_beat, programs, len(todo),
                temperature, top_p, seed + 7919 * attempt,
            )  # fmt: skip
            for i, new in zip(todo, seqs, strict=True):
                out[i] = self._new_notes(base, new, start_beat, end_beat, offset, clock)
        return [o for o in out if o is not None]

    def _new_notes(self, base, new, start_beat, end_beat, offset, clock) -> dict[str, np.ndarray]:
        """The notes of ``new`` (ids after the prompt's ``base`` ids) inside the asked span."""
        g = self.grammar
        notes = tk.decode_notes([*base, *g.base_ids(new)], g.types, g.values, g.res)
        keep = np.arange(len(notes["pitch"])) >= _n_notes(base, g.types)
        keep &= (notes["onset_beats"] >= start_beat - 1e-9) & (notes["onset_beats"] < end_beat)
        keep &= ~_struck_again(notes)
        return _to_columns({k: v[keep] for k, v in notes.items()}, offset, clock)

    def continue_song(
        self,
        prompt_notes: Mapping[str, np.ndarray],
        seconds: float,
        temperature: float = 1.0,
        top_p: float = 0.95,
        seed: int = 0,
        genre: str | None = None,
    ) -> dict[str, np.ndarray]:
        """New notes of every instrument of the prompt for ``seconds`` after it ends.

        ``prompt_notes``: a notes table of all the prompt's tracks (columns as notes.parquet;
        without beat columns the prompt is read at 120 qpm). Returns pitch, velocity,
        onset_s, duration_s, program, is_drum (+ onset_beats, duration_beats) on the
        prompt's clock, the first note at or after the prompt's end.
        """
        return self.continue_songs(prompt_notes, seconds, 1, temperature, top_p, seed, genre)[0]

    def continue_notes(
        self,
        prompt_notes: Mapping[str, np.ndarray],
        seconds: float,
        temperature: float = 1.0,
        top_p: float = 0.95,
        seed: int = 0,
        genre: str | None = None,
    ) -> dict[str, np.ndarray]:
        """The one-line interface of generate/prompted.py: the pitched new notes."""
        song = self.continue_song(prompt_notes, seconds, temperature, top_p, seed, genre)
        keep = ~song["is_drum"]
        return {k: v[keep] for k, v in song.items()}

    # -- likelihood ---------------------------------------------------------------------
    def token_bits(
        self, data: Mapping[str, np.ndarray], split: str = "test", max_songs: int = 200
    ) -> dict:
        """Bits per note of the split's (untransposed) songs, in chunks of the context.

        One BLAS thread, as in ``continue_songs``: a 512-token chunk is too small to share, and
        the sums then do not depend on the machine's core count (with two threads the value
        moved in the 9th decimal; 51 CPU-s instead of 213 on the loaded 2-core machine)."""
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1):
            return self._token_bits(data, split, max_songs)

    def _token_bits(self, data: Mapping[str, np.ndarray], split: str, max_songs: int) -> dict:
        ctx = self.net.context
        rows = np.flatnonzero(np.asarray(data["splits"]) == split)[:max_songs]
        total, notes, tokens = 0.0, 0, 0
        for r in rows:
            seq = np.asarray(data["ids"][data["offsets"][r] : data["offsets"][r + 1]], np.int64)
            genre, body = seq[0], seq[1:]
            body_bars = self.grammar.bar_positions(seq)[1:]
            for s in range(0, len(body) - 1, ctx - 1):
                chunk = np.r_[genre, body[s : s + ctx - 1]]
                if len(chunk) < 2:
                    continue
                at = np.r_[0, body_bars[s : s + ctx - 1]][None, :-1]
                z = self.net.forward(chunk[None, :-1], self.net.new_cache(1, ctx), 0, at)[0].astype(
                    np.float64
                )
                z = z - z.max(1, keepdims=True)
                logp = z[np.arange(len(z)), chunk[1:]] - np.log(np.exp(z).sum(1))
                total -= float(logp.sum()) / math.log(2)
                notes += int(self.grammar.n_notes[chunk[1:]].sum())
                tokens += len(chunk) - 1
        return {
            "all_bits_per_note": total / max(notes, 1),
            "bits_per_token": total / max(tokens, 1),
            "notes": notes,
            "conditioning": f"genre token + previous tokens of its {ctx}-token chunk (all tracks)",
        }


class BeatClock:
    """Beats <-> seconds of a prompt from its notes (piecewise linear; past the ends at the
    tempo of the nearest stretch)."""

    def __init__(self, beats: np.ndarray, seconds: np.ndarray) -> None:
        b, idx = np.unique(np.asarray(beats, np.float64), return_index=True)
        s = np.asarray(seconds, np.float64)[idx]
        if len(b) < 2:
            b, s = np.r_[b[:1], b[:1] + 1.0], np.r_[s[:1], s[:1] + 0.5]
        self.b, self.s = b, s
        self.slope_lo = (s[1] - s[0]) / (b[1] - b[0])
        self.slope_hi = (s[-1] - s[-2]) / (b[-1] - b[-2])

    def seconds(self, beats: np.ndarray | float) -> np.ndarray:
        x = np.asarray(beats, np.float64)
        y = np.interp(x, self.b, self.s)
        y = np.where(x > self.b[-1], self.s[-1] + (x - self.b[-1]) * self.slope_hi, y)
        return np.where(x < self.b[0], self.s[0] + (x - self.b[0]) * self.slope_lo, y)

    def beats(self, seconds: np.ndarray | float) -> np.ndarray:
        x = np.asarray(seconds, np.float64)
        y = np.interp(x, self.s, self.b)
        y = np.where(x > self.s[-1], self.b[-1] + (x - self.s[-1]) / self.slope_hi, y)
        return np.where(x < self.s[0], self.b[0] + (x - self.s[0]) / self.slope_lo, y)


def _prompt_columns(notes: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The prompt's columns as arrays; beats from seconds at 120 qpm when it has none."""
    n = len(np.asarray(notes["pitch"]))
    cols = {
        "pitch": np.asarray(notes["pitch"], np.int64),
        "velocity": np.asarray(notes["velocity"], np.int64),
        "onset_s": np.asarray(notes["onset_s"], np.float64),
        "duration_s": np.asarray(notes["duration_s"], np.float64),
        "track": np.asarray(notes["track"], np.int64)
        if "track" in notes
        else np.zeros(n, np.int64),
        "program": np.asarray(notes["program"], np.int64)
        if "program" in notes
        else np.zeros(n, np.int64),
        "is_drum": np.asarray(notes["is_drum"], bool) if "is_drum" in notes else np.zeros(n, bool),
    }
    if "onset_beats" in notes and "duration_beats" in notes:
        cols["onset_beats"] = np.asarray(notes["onset_beats"], np.float64)
        cols["duration_beats"] = np.asarray(notes["duration_beats"], np.float64)
    elif "onset_beats" in notes:  # beats of onsets only (the evaluation's cuts): ends through
        # the prompt's own clock, never 120 qpm (that put every onset off the song's grid)
        cols["onset_beats"] = np.asarray(notes["onset_beats"], np.float64)
        clock = BeatClock(cols["onset_beats"], cols["onset_s"])
        end = clock.beats(cols["onset_s"] + cols["duration_s"])
        cols["duration_beats"] = np.maximum(end - cols["onset_beats"], 0.0)
    else:
        cols["onset_beats"], cols["duration_beats"] = (
            cols["onset_s"] * 2.0,
            cols["duration_s"] * 2.0,
        )
    return cols


def _log_softmax(z: np.ndarray) -> np.ndarray:
    z = z.astype(np.float64)
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def _silent(notes: Mapping[str, np.ndarray], pitched: bool) -> bool:
    """No note, or (``pitched``: the prompt has pitched notes) no pitched note."""
    drum = np.asarray(notes["is_drum"], bool)
    return len(drum) == 0 or (pitched and bool(drum.all()))


def _struck_again(notes: Mapping[str, np.ndarray]) -> np.ndarray:
    """Notes of an instrument at a pitch and onset another (longer, or as long and earlier)
    one already has: one track per instrument plays them as one note, so they are not kept
    (nor counted as notes by the evaluation)."""
    key = np.stack([notes["program"], notes["pitch"], np.round(notes["onset_beats"] * 96)], 1)
    order = np.lexsort((np.arange(len(key)), -np.asarray(notes["duration_beats"])))
    _, first = np.unique(key[order], axis=0, return_index=True)
    again = np.ones(len(key), bool)
    again[order[first]] = False
    return again


def _n_notes(base: np.ndarray, types: np.ndarray) -> int:
    return int((types[np.asarray(base, np.int64)] == tk.DURATION).sum()) if len(base) else 0


def _to_columns(
    notes: dict[str, np.ndarray], offset: float, clock: BeatClock
) -> dict[str, np.ndarray]:
    on_b = notes["onset_beats"] + offset
    end_b = on_b + notes["duration_beats"]
    on_s = clock.seconds(on_b)
    order = np.lexsort((notes["pitch"], on_b))
    drum = notes["program"] < 0
    out = {
        "pitch": notes["pitch"].astype(np.int64),
        "velocity": notes["velocity"].astype(np.int64),
        "onset_s": on_s,
        "duration_s": clock.seconds(end_b) - on_s,
        "program": np.where(drum, 0, notes["program"]).astype(np.int64),
        "is_drum": drum,
        "onset_beats": on_b,
        "duration_beats": notes["duration_beats"].astype(np.float64),
    }
    return {k: v[order] for k, v in out.items()}


def save_model(
    out_dir: Path,
    weights: Mapping[str, np.ndarray],
    network: Mapping[str, Any],
    tokenizer: Any,
    genres: list[str],
    config: dict,
) -> None:
    """Weights (npz), tokenizer and meta.json naming this runtime as the continuer."""
    np.savez(Path(out_dir) / WEIGHTS, **weights)
    tk.save_tokenizer(tokenizer, Path(out_dir) / TOKENIZER, genres)
    write_meta(
        out_dir,
        "transformer",
        config,
        continuer=f"{TransformerContinuer.__module__}.{TransformerContinuer.__qualname__}",
        network=dict(network),
        weights=WEIGHTS,
        tokenizer=TOKENIZER,
        genres=list(genres),
        checkpoint="best.ckpt",
    )
