"""The two recurrent generators of the seed study.

- ``NoteLSTM`` (second seed): 3 LSTM layers -> dense -> dropout -> softmax over 128 pitches,
  cross-entropy. Inputs per event: a pitch embedding and the event's velocity, delta-onset
  and duration (``neural.timing_features``).
- ``ToneDeafLSTM`` (first seed): the ``[interval, duration]`` view only, so it cannot tell a
  melody from its transposition. Heads: a distribution over intervals -J..J and the next
  log-duration; loss ``losses.tonedeaf_loss`` (w_int * L_int + w_dur * L_dur + w_jump * L_jump).
  Its pitch distribution is the interval distribution shifted by the last pitch, restricted
  to 0..127 and renormalised.
"""

from __future__ import annotations

import torch
from torch import nn

from midiml.generate.losses import tonedeaf_loss
from midiml.generate.neural import NextNoteModule, timing_features
from midiml.represent.windows import DURATION, PITCH


def forget_bias_one(lstm: nn.LSTM) -> None:
    """Start the forget gates open (bias 1): deep LSTMs then learn in far fewer steps."""
    for name, p in lstm.named_parameters():
        if name.startswith("bias_ih"):
            with torch.no_grad():
                n = p.shape[0] // 4
                p[n : 2 * n].fill_(1.0)


class NoteLSTM(NextNoteModule):
    def __init__(
        self,
        n_in: int = 16,
        embed: int = 48,
        hidden: int = 128,
        layers: int = 3,
        dense: int = 128,
        dropout: float = 0.2,
        lstm_dropout: float = 0.0,
        lr: float = 2e-3,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.embed = nn.Embedding(128, embed)
        self.lstm = nn.LSTM(
            embed + 3,
            hidden,
            num_layers=layers,
            batch_first=True,
            dropout=lstm_dropout if layers > 1 else 0.0,
        )
        forget_bias_one(self.lstm)
        # the dense layer also sees the current event (a skip past the LSTM stack): the deep
        # stack then trains in far fewer steps on a CPU budget
        self.head = nn.Sequential(
            nn.Linear(hidden + embed + 3, dense),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(dense, 128),
        )

    def step_logits(self, events: torch.Tensor) -> torch.Tensor:
        """(B, T, 4) events -> (B, T, 128): logits of event t+1 after seeing events 0..t."""
        x = torch.cat(
            [self.embed(events[..., PITCH].long().clamp(0, 127)), timing_features(events)], -1
        )
        out, _ = self.lstm(x)
        return self.head(torch.cat([out, x], -1))

    def pitch_log_probs(self, windows: torch.Tensor) -> torch.Tensor:
        w = windows[:, -self.hparams.n_in :]
        return self.step_logits(w)[:, -1].float().log_softmax(dim=1)

    def loss(self, windows, target):
        """Cross-entropy of the next pitch at every step of the window (teacher forcing)."""
        seq = torch.cat([windows[:, -self.hparams.n_in :], target[:, None]], dim=1)
        logits = self.step_logits(seq[:, :-1]).float()
        ce = nn.functional.cross_entropy(
            logits.reshape(-1, 128), seq[:, 1:, PITCH].long().clamp(0, 127).reshape(-1)
        )
        return ce, {}


class ToneDeafLSTM(NextNoteModule):
    def __init__(
        self,
        n_in: int = 16,
        embed: int = 32,
        hidden: int = 128,
        layers: int = 2,
        dropout: float = 0.2,
        lr: float = 2e-3,
        weight_decay: float = 0.0,
        max_interval: int = 48,
        loss: dict[str, float] | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        # tonedeaf_loss's keyword arguments: w_int, w_dur, w_jump, jump
        self.loss_weights = dict(loss or {})
        n_cls = 2 * max_interval + 1
        self.embed = nn.Embedding(n_cls, embed)
        self.lstm = nn.LSTM(
            embed + 1,
            hidden,
            num_layers=layers,
            batch_first=True,
            dropout=dropout if layers > 1 else 0.0,
        )
        self.drop = nn.Dropout(dropout)
        self.interval_head = nn.Linear(hidden, n_cls)
        self.duration_head = nn.Linear(hidden, 1)

    def _intervals(self, events: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T, 4) -> interval classes (B, T-1) and log-durations (B, T-1) of events 1..T-1."""
        j = self.hparams.max_interval
        interval = torch.diff(events[..., PITCH], dim=1).long().clamp(-j, j) + j
        dur = torch.log1p(10.0 * events[:, 1:, DURATION].clamp_min(0))
        return interval, dur

    def step_heads(self, events: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Interval logits (B, T-1, 2J+1) and log-duration (B, T-1) of the event after each."""
        interval, dur = self._intervals(events)
        out, _ = self.lstm(torch.cat([self.embed(interval), dur[..., None]], -1))
        out = self.drop(out)
        return self.interval_head(out), self.duration_head(out).squeeze(-1)

    def heads(self, windows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Only the intervals between the window's events and their durations are seen."""
        logits, dur = self.step_heads(windows[:, -self.hparams.n_in :])
        return logits[:, -1], dur[:, -1]

    def pitch_log_probs(self, windows: torch.Tensor) -> torch.Tensor:
        logits, _ = self.heads(windows)
        j = self.hparams.max_interval
        last = windows[:, -1, PITCH].long().clamp(0, 127)
        interval = torch.arange(128, device=logits.device)[None, :] - last[:, None]
        valid = interval.abs() <= j
        out = logits.float().gather(1, (interval.clamp(-j, j) + j))
        out = out.masked_fill(~valid, float("-inf"))
        return out.log_softmax(dim=1)

    def predict_duration(self, windows: torch.Tensor) -> torch.Tensor:
        _, d = self.heads(windows)
        return (torch.expm1(d.float()) / 10.0).clamp_min(0.01)

    def loss(self, windows, target):
        """Tone-deaf loss at every step of the window (teacher forcing)."""
        seq = torch.cat([windows[:, -self.hparams.n_in :], target[:, None]], dim=1)
        logits, dur = self.step_heads(seq[:, :-1])
        interval, dur_t = self._intervals(seq[:, 1:])
        h = self.hparams
        n_cls = logits.shape[-1]
        return tonedeaf_loss(
            logits.reshape(-1, n_cls),
            (interval - h.max_interval).reshape(-1),
            dur.reshape(-1),
            dur_t.reshape(-1),
            max_interval=h.max_interval,
            **self.loss_weights,
        )
