"""Feed-forward next-pitch network with the seed's repetition and similarity penalties.

Pitch window -> embedding -> MLP -> softmax over 128 pitches. Trained with
``losses.repetition_loss``: CE + lambda_rep * N_rep**alpha + lambda_sim * N_sim**alpha
(``model.loss``, which ``model.generators.ffnn.module.loss`` interpolates), the seed study's
cure for a net that "converged to sequences of the same note".
"""

from __future__ import annotations

import torch
from torch import nn

from midiml.generate.losses import repetition_loss
from midiml.generate.neural import NextNoteModule
from midiml.represent.windows import PITCH


class FFNNModule(NextNoteModule):
    def __init__(
        self,
        n_in: int = 16,
        embed: int = 32,
        hidden: int = 256,
        dropout: float = 0.2,
        lr: float = 2e-3,
        weight_decay: float = 0.0,
        loss: dict[str, float] | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        # repetition_loss's keyword arguments: alpha, lambda_rep, lambda_sim, rep_context
        self.loss_weights = dict(loss or {})
        self.embed = nn.Embedding(128, embed)
        self.net = nn.Sequential(
            nn.Flatten(),
            nn.Linear(n_in * embed, hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, 128),
        )

    def logits(self, windows: torch.Tensor) -> torch.Tensor:
        pitches = windows[:, -self.hparams.n_in :, PITCH].long().clamp(0, 127)
        return self.net(self.embed(pitches))

    def pitch_log_probs(self, windows: torch.Tensor) -> torch.Tensor:
        return self.logits(windows).float().log_softmax(dim=1)

    def loss(self, windows, target):
        h = self.hparams
        return repetition_loss(
            self.logits(windows),
            target[:, PITCH].long().clamp(0, 127),
            windows[:, -h.n_in :, PITCH],
            **self.loss_weights,
        )
