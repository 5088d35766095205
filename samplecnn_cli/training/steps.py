"""The two hot loops' bodies, shared by train, evaluate, tag and bench so bench measures what they run.

train_step: one optimizer step on a batch of segments. predict_segments: song-level outputs of many
segments, batched (sigmoid for multi-label, softmax for single-label).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from samplecnn_cli.training.device import autocast


def loss_function(task: str) -> nn.Module:
    """Sigmoid + binary cross-entropy for multi-label, softmax + cross-entropy for single-label."""
    return nn.BCEWithLogitsLoss() if task == "multilabel" else nn.CrossEntropyLoss()


def loss_targets(labels: torch.Tensor, task: str) -> torch.Tensor:
    """Multi-hot float targets for BCE, class indices for cross-entropy (labels are one-hot there)."""
    return labels.float() if task == "multilabel" else labels.float().argmax(dim=1)


def outputs_to_scores(logits: torch.Tensor, task: str) -> torch.Tensor:
    logits = logits.float()
    return torch.sigmoid(logits) if task == "multilabel" else torch.softmax(logits, dim=1)


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, loss_fn: nn.Module, x: torch.Tensor,
               labels: torch.Tensor, *, task: str, device: torch.device, precision: str,
               scaler=None) -> torch.Tensor:
    """Forward (under autocast), loss in fp32, backward, step. Returns the loss (detached)."""
    x = x.to(device, non_blocking=True)
    target = loss_targets(labels.to(device, non_blocking=True), task)
    with autocast(device, precision):
        logits = model(x)
    loss = loss_fn(logits.float(), target)
    optimizer.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    else:
        loss.backward()
        optimizer.step()
    return loss.detach()


@torch.inference_mode()
def logits_batch(model: nn.Module, x: torch.Tensor, *, device: torch.device, precision: str) -> torch.Tensor:
    """fp32 logits (B, L) of a batch of segments (model in eval mode), on `device`."""
    with autocast(device, precision):
        return model(x.to(device, non_blocking=True)).float()


def predict_batch(model: nn.Module, x: torch.Tensor, *, task: str, device: torch.device,
                  precision: str) -> torch.Tensor:
    """Scores (B, L) of a batch of segments (model in eval mode), as fp32 on the CPU."""
    logits = logits_batch(model, x, device=device, precision=precision)
    return outputs_to_scores(logits, task).cpu()


def predict_segments(model: nn.Module, segments: np.ndarray, *, task: str, batch_size: int,
                     device: torch.device, precision: str) -> np.ndarray:
    """Scores (S, L) of segments (S, T), `batch_size` at a time."""
    out = []
    for i in range(0, segments.shape[0], batch_size):
        x = torch.from_numpy(np.ascontiguousarray(segments[i:i + batch_size]))
        out.append(predict_batch(model, x, task=task, device=device, precision=precision).numpy())
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)
