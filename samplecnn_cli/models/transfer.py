"""The transfer classifier of Section 4.1: two fully connected hidden layers over extracted features.

    standardise (train mean/std, held as buffers) -> [dense `hidden` -> ReLU -> dropout] x 2 -> dense (logits)

The standardisation statistics live in the model's buffers, so a checkpoint alone turns raw feature
rows into predictions.
"""

from __future__ import annotations

import torch
from torch import nn

TASKS = ("multilabel", "multiclass")


class TransferMLP(nn.Module):
    def __init__(self, in_features: int, num_outputs: int, hidden: int = 4096, dropout: float = 0.5,
                 task: str = "multilabel"):
        super().__init__()
        if in_features < 1 or num_outputs < 1 or hidden < 1:
            raise ValueError("in_features, num_outputs and hidden must be positive")
        if not 0.0 <= dropout < 1.0:
            raise ValueError("dropout must be in [0, 1)")
        if task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, not {task!r}")
        self.in_features, self.num_outputs, self.hidden = int(in_features), int(num_outputs), int(hidden)
        self.dropout_rate, self.task = float(dropout), task
        self.register_buffer("feature_mean", torch.zeros(self.in_features))
        self.register_buffer("feature_std", torch.ones(self.in_features))
        self.layers = nn.Sequential(
            nn.Linear(self.in_features, self.hidden), nn.ReLU(inplace=True), nn.Dropout(self.dropout_rate),
            nn.Linear(self.hidden, self.hidden), nn.ReLU(inplace=True), nn.Dropout(self.dropout_rate),
            nn.Linear(self.hidden, self.num_outputs),
        )

    def set_feature_stats(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Store the training features' per-column mean and std (a zero std counts as 1)."""
        std = torch.as_tensor(std, dtype=torch.float32).clone()
        std[std <= 1e-8] = 1.0
        self.feature_mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        self.feature_std.copy_(std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers((x - self.feature_mean) / self.feature_std)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Scores: sigmoid per label (multi-label) or softmax over classes (single-label)."""
        logits = self.forward(x)
        return torch.sigmoid(logits) if self.task == "multilabel" else torch.softmax(logits, dim=-1)
