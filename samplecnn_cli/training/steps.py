"""The two hot loops' bodies, shared by train, evaluate, tag and bench so bench measures what they run.

train_step: one optimizer step on a batch (segments, or transfer feature rows). validate: validation
loss and a song-level metric. predict_segments: song-level outputs of many
segments, batched (sigmoid for multi-label, softmax for single-label).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from samplecnn_cli.metrics import compute_metrics
from samplecnn_cli.training.device import Precision, autocast


def loss_function(task: str) -> nn.Module:
    """Sigmoid + binary cross-entropy for multi-label, softmax + cross-entropy for single-label."""
    return nn.BCEWithLogitsLoss() if task == "multilabel" else nn.CrossEntropyLoss()


def loss_targets(labels: torch.Tensor, task: str) -> torch.Tensor:
    """Multi-hot float targets for BCE, class indices for cross-entropy (labels are one-hot there)."""
    return labels.float() if task == "multilabel" else labels.float().argmax(dim=1)


def outputs_to_scores(logits: torch.Tensor, task: str) -> torch.Tensor:
    logits = logits.float()
    return torch.sigmoid(logits) if task == "multilabel" else torch.softmax(logits, dim=1)


def task_loss(task: str):
    """loss(logits, labels) in fp32, with the targets the task's loss takes (see loss_targets)."""
    loss_fn = loss_function(task)
    return lambda logits, labels: loss_fn(logits.float(), loss_targets(labels, task))


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, precision: Precision, loss_of,
               batch) -> torch.Tensor:
    """One optimizer step on `batch` = (inputs, labels, ...): forward under the precision's autocast,
    the loss in fp32, backward + step (scaled under fp16). Returns the loss (detached)."""
    x = batch[0].to(precision.device, non_blocking=True)
    labels = batch[1].to(precision.device, non_blocking=True)
    with precision.autocast():
        logits = model(x)
    loss = loss_of(logits, labels)
    precision.backward_step(loss, optimizer)
    return loss.detach()


@dataclass
class ValidationSet:
    """What validation runs over: batches of (inputs, labels, clip index) and each clip's targets."""

    batches: Iterable
    targets: np.ndarray  # (clips, labels) bool
    label_names: list[str]
    task: str


def validate(model: nn.Module, data: ValidationSet, precision: Precision) -> dict:
    """Mean loss over all items and a song-level metric (mean of item scores per clip)."""
    model.eval()
    loss_of = task_loss(data.task)
    sums = np.zeros(data.targets.shape, np.float64)
    counts = np.zeros(data.targets.shape[0], np.int64)
    total, n = 0.0, 0
    for x, labels, clip in data.batches:
        logits = logits_batch(model, x, device=precision.device, precision=precision.name)
        total += loss_of(logits, labels.to(precision.device)).item() * x.shape[0]
        n += x.shape[0]
        np.add.at(sums, clip.numpy(), outputs_to_scores(logits, data.task).cpu().numpy())
        np.add.at(counts, clip.numpy(), 1)
    model.train()
    metrics = compute_metrics(sums / np.maximum(counts, 1)[:, None], data.targets, data.task, data.label_names)
    name = "accuracy" if data.task == "multiclass" else "roc_auc"
    value = metrics[name]
    return {"loss": total / max(n, 1), "metric": f"valid_{name}", "value": float("nan") if value is None else value}


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
