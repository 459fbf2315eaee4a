"""Conditional piano-roll VAE: hear the first half of a window, guess the second.

The seed study's VAE was trained on a sparse frame roll with a plain reconstruction loss
and learned to hold notes forever: on a roll that is ~98 % empty, predicting "nothing new,
keep what sounds" scores well, and blurred sustained probabilities are cheap. Here:

- two output heads, onset and frame, so a note's *start* is its own target;
- class-balanced BCE (positives weighted by ``pos_weight``) with an optional focal term,
  so missing an onset costs about as much as inventing one;
- KL annealed from 0 over ``kl_warmup_steps`` with free bits per latent dimension, so the
  latent is used rather than collapsed to the prior;
- decoding thresholds picked on validation windows (``choose_thresholds``);
- a repetition prior (``repeat_prior``): music repeats, so the decoder is also shown the
  context continued periodically at its best-matching lag (:func:`repetition_roll`) and
  learns, per step, how far to trust it. A compressed latent cannot carry exact pitches
  and rhythms; the prior hands them over, and the latent supplies the variation.

``loss: plain`` trains the *same network* the study's way (unweighted BCE on the frame
roll only, full KL from the start) and decodes a note wherever the frame switches on; the
evaluation stage compares the two.

Shapes: a batch is (B, 2, P, W) with channel 0 = onset, 1 = frame; the context is the first
W/2 steps, the continuation the rest. Pitches are treated as channels of a 1-D
convolution over time.
"""

from __future__ import annotations

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

LOSSES = ("balanced", "plain")


def _encoder(in_ch: int, hidden: int, n_down: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    ch = in_ch
    for _ in range(n_down):
        layers += [nn.Conv1d(ch, hidden, 4, stride=2, padding=1), nn.GELU()]
        ch = hidden
    return nn.Sequential(*layers)


def roll_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    kind: str = "balanced",
    onset_pos_weight: float = 30.0,
    frame_pos_weight: float = 5.0,
    focal_gamma: float = 0.0,
) -> torch.Tensor:
    """Reconstruction loss per window, summed over cells and averaged over the batch.

    ``logits`` and ``target``: (B, 2, P, T), channel 0 onset, 1 frame.
    ``plain``: unweighted BCE on the frame channel only (the study's loss).
    ``balanced``: onset BCE with positives weighted ``onset_pos_weight`` plus frame BCE
    weighted ``frame_pos_weight``, times ``(1 - p_t)^focal_gamma`` when gamma > 0.
    """
    if kind not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, not {kind!r}")
    b = logits.shape[0]
    if kind == "plain":
        bce = F.binary_cross_entropy_with_logits(logits[:, 1], target[:, 1], reduction="sum")
        return bce / b
    total = logits.new_zeros(())
    for ch, w in ((0, onset_pos_weight), (1, frame_pos_weight)):
        x, y = logits[:, ch], target[:, ch]
        bce = F.binary_cross_entropy_with_logits(
            x, y, pos_weight=torch.tensor(w, dtype=x.dtype, device=x.device), reduction="none"
        )
        if focal_gamma > 0:
            p = torch.sigmoid(x)
            p_t = p * y + (1 - p) * (1 - y)
            bce = bce * (1 - p_t).pow(focal_gamma)
        total = total + bce.sum()
    return total / b


def repetition_roll(
    context: torch.Tensor, min_lag: int = 16, max_lag_share: float = 0.75
) -> torch.Tensor:
    """The context continued periodically: (B, 2, P, T) -> (B, 2, P, T).

    The lag is the one in ``[min_lag, max_lag_share * T]`` whose onset self-similarity
    (onsets at t and t + lag on the same pitch, cosine-normalised by the onsets in both
    overlapping parts) is highest; the smallest such lag on ties. Step t of the continuation
    copies context step ``T - lag + (t mod lag)``. An empty context gives an empty roll.
    """
    b, _, p, t = context.shape
    on = context[:, 0].float()
    n = 2 * t
    spec = torch.fft.rfft(on, n=n)
    corr = torch.fft.irfft(spec * spec.conj(), n=n)[..., :t].sum(1)  # (B, T): sum_t on[t]on[t+L]
    per_step = on.sum(1)  # (B, T)
    prefix = torch.cumsum(per_step, 1)  # onsets in [0, i]
    total = prefix[:, -1:]
    lags = torch.arange(t, device=context.device)
    later = total - torch.cat([torch.zeros_like(total), prefix[:, :-1]], 1)  # onsets in [L, T)
    earlier = torch.cat([torch.zeros_like(total), prefix], 1)[:, (t - lags).clamp(min=0)]
    score = corr / torch.sqrt(later * earlier).clamp(min=1e-9)
    score = torch.round(score * 1e4) / 1e4  # FFT noise must not break ties
    max_lag = max(min_lag + 1, int(max_lag_share * t))
    valid = (lags >= min_lag) & (lags < max_lag)
    score = torch.where(valid, score, torch.full_like(score, -1.0))
    lag = score.argmax(1).clamp(min=1)  # (B,)
    steps = torch.arange(t, device=context.device)
    src = t - lag[:, None] + steps[None, :] % lag[:, None]  # (B, T)
    index = src[:, None, None, :].expand(b, 2, p, t)
    return torch.gather(context, 3, index)


def kl_term(mu: torch.Tensor, logvar: torch.Tensor, free_bits: float = 0.0) -> torch.Tensor:
    """KL(q || N(0, I)) per window; each dimension's batch-mean KL floored at ``free_bits``."""
    kl = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)  # (B, Z)
    per_dim = kl.mean(dim=0)
    if free_bits > 0:
        per_dim = torch.clamp(per_dim, min=free_bits)
    return per_dim.sum()


class RollVAE(L.LightningModule):
    """Conditional VAE over (onset, frame) roll windows."""

    def __init__(
        self,
        n_pitches: int = 88,
        window: int = 512,
        hidden: int = 96,
        latent: int = 32,
        n_down: int = 4,
        lr: float = 0.002,
        loss: str = "balanced",
        onset_pos_weight: float = 30.0,
        frame_pos_weight: float = 5.0,
        focal_gamma: float = 0.0,
        beta: float = 1.0,
        free_bits: float = 0.1,
        kl_warmup_steps: int = 300,
        repeat_prior: bool = True,
        repeat_min_lag: int = 16,
    ) -> None:
        super().__init__()
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, not {loss!r}")
        if (window // 2) % (2**n_down):
            raise ValueError(f"half window {window // 2} must divide by 2**n_down")
        self.save_hyperparameters()
        self.half = window // 2
        self.n_pitches = n_pitches
        in_ch = 2 * n_pitches
        self.context_enc = _encoder(in_ch, hidden, n_down)  # context -> (B, H, T')
        self.target_enc = _encoder(in_ch, hidden, n_down)  # continuation -> (B, H, T')
        t_small = self.half // 2**n_down
        self.to_stats = nn.Sequential(
            nn.Flatten(), nn.Linear(2 * hidden * t_small, 2 * latent)
        )  # q(z | context, continuation)
        self.from_z = nn.Linear(latent, hidden * t_small)
        dec: list[nn.Module] = []
        for i in range(n_down):
            ch_in = 2 * hidden if i == 0 else hidden
            dec += [nn.ConvTranspose1d(ch_in, hidden, 4, stride=2, padding=1), nn.GELU()]
        self.decoder = nn.Sequential(*dec)
        self.head = nn.Conv1d(hidden, in_ch, 3, padding=1)
        self.t_small = t_small
        if repeat_prior:
            # each pitch's repeated roll, smoothed over ±1 step, scaled by a learned
            # per-step trust (one for onsets, one for frames) from the decoder's state
            self.repeat_filter = nn.Conv1d(in_ch, in_ch, 3, padding=1, groups=in_ch)
            self.repeat_trust = nn.Conv1d(hidden, 2, 1)
            with torch.no_grad():
                self.repeat_filter.weight.zero_()
                self.repeat_filter.weight[:, 0, 1] = 1.0
                self.repeat_filter.bias.zero_()

    # -- pieces -------------------------------------------------------------------------------
    def _flat(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], 2 * self.n_pitches, x.shape[-1])

    def encode_context(self, context: torch.Tensor) -> torch.Tensor:
        return self.context_enc(self._flat(context))

    def posterior(
        self, ctx_h: torch.Tensor, continuation: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        tgt_h = self.target_enc(self._flat(continuation))
        stats = self.to_stats(torch.cat([ctx_h, tgt_h], dim=1))
        mu, logvar = stats.chunk(2, dim=1)
        return mu, logvar.clamp(-8.0, 8.0)

    def decode(
        self, ctx_h: torch.Tensor, z: torch.Tensor, context: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Logits (B, 2, P, W/2) of the continuation from the context code and a latent
        (and, with the repetition prior, the context roll itself)."""
        zh = self.from_z(z).reshape(z.shape[0], -1, self.t_small)
        h = self.decoder(torch.cat([ctx_h, zh], dim=1))
        out = self.head(h)
        if self.hparams.repeat_prior:
            if context is None:
                raise ValueError("a model with the repetition prior decodes with its context")
            rep = repetition_roll(context, int(self.hparams.repeat_min_lag)).to(out.dtype)
            trust = F.softplus(self.repeat_trust(h))  # (B, 2, T)
            prior = self.repeat_filter(self._flat(rep)).reshape(-1, 2, self.n_pitches, self.half)
            out = out.reshape(prior.shape) + trust[:, :, None, :] * prior
        return out.reshape(z.shape[0], 2, self.n_pitches, self.half)

    def forward(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        context, continuation = batch[..., : self.half], batch[..., self.half :]
        ctx_h = self.encode_context(context)
        mu, logvar = self.posterior(ctx_h, continuation)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp() if self.training else mu
        return self.decode(ctx_h, z, context), mu, logvar

    @torch.no_grad()
    def sample(
        self, context: torch.Tensor, n: int = 1, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Probabilities (B*n, 2, P, W/2) of continuations with z drawn from the prior."""
        context = context.repeat_interleave(n, dim=0)
        ctx_h = self.encode_context(context)
        z = torch.randn(
            ctx_h.shape[0], self.hparams.latent, generator=generator, device=ctx_h.device
        )
        return torch.sigmoid(self.decode(ctx_h, z.to(ctx_h.dtype), context))

    # -- training -------------------------------------------------------------------------------
    def _losses(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        hp = self.hparams
        logits, mu, logvar = self(batch)
        target = batch[..., self.half :]
        rec = roll_loss(
            logits, target, hp.loss, hp.onset_pos_weight, hp.frame_pos_weight, hp.focal_gamma
        )
        if hp.loss == "plain":  # the study: full KL weight from step 0, no free bits
            kl, weight = kl_term(mu, logvar), hp.beta
        else:
            kl = kl_term(mu, logvar, hp.free_bits)
            warm = max(1, int(hp.kl_warmup_steps))
            weight = hp.beta * min(1.0, self.global_step / warm)
        return {"loss": rec + weight * kl, "rec": rec, "kl": kl_term(mu, logvar)}

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        out = self._losses(batch)
        self.log_dict({f"train_{k}": v for k, v in out.items()}, on_step=False, on_epoch=True)
        return out["loss"]

    def validation_step(self, batch: torch.Tensor, batch_idx: int) -> None:
        out = self._losses(batch)
        self.log_dict({f"val_{k}": v for k, v in out.items()}, on_step=False, on_epoch=True)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def seeded_generator(seed: int) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(int(seed) % (2**63 - 1))
    return g


def stack_windows(ds: object, limit: int | None = None) -> torch.Tensor:
    """A dataset of windows as one (N, 2, P, W) tensor (evaluation sets are small)."""
    n = len(ds) if limit is None else min(len(ds), limit)  # type: ignore[arg-type]
    return torch.stack([ds[i] for i in range(n)]) if n else torch.zeros(0)  # type: ignore[index]


def mean_probs(model: RollVAE, windows: torch.Tensor, seed: int, batch: int = 64) -> np.ndarray:
    """One prior sample per window: (N, 2, P, W/2) probabilities, seeded."""
    g = seeded_generator(seed)
    model.eval()
    outs = []
    for i in range(0, len(windows), batch):
        ctx = windows[i : i + batch, ..., : model.half].to(model.device)
        outs.append(model.sample(ctx, 1, g).float().cpu().numpy())
    return np.concatenate(outs) if outs else np.zeros((0,))
