"""The bodies of the training loop, shared by train, transfer and `bench train` (so bench measures what
train runs).

train_step: one optimizer step on a batch (segments, or transfer feature rows). validate_clips: the
validation loss and song-level metric of a waveform model over a store split, through the inference core
(inference/predictor.py, the model as it is). validate_rows: the same for transfer feature rows, one
row per clip.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from samplecnn_cli.core.metrics import compute_metrics
from samplecnn_cli.core.runtime import StepPrecision, outputs_to_scores, task_loss
from samplecnn_cli.inference.predictor import Predictor, store_clips


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, precision: StepPrecision, loss_of,
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


def validate_clips(model: nn.Module, split, precision: StepPrecision, *, batch_size: int,
                   label_names: list[str]) -> dict:
    """Mean loss over every segment of the split and the song-level metric (mean of segment scores per
    clip), with `model` in eval mode under the run's autocast."""
    predictor = Predictor.eager(model, precision.runtime, task=split.task, batch_size=batch_size,
                                input_samples=model.input_samples, sample_rate=model.sample_rate)
    scores = np.zeros(split.labels.shape, np.float64)
    loss_sum, segments = 0.0, 0
    model.eval()
    for result in predictor.run(store_clips(split), ("scores", "loss")):
        scores[result.key] = result.scores
        loss_sum += result.loss * result.windows
        segments += result.windows
    model.train()
    return _summary(scores, split.labels.astype(bool), split.task, label_names, loss_sum / max(segments, 1))


@dataclass
class ValidationSet:
    """Transfer validation: batches of (feature rows, labels, clip index) and each clip's targets."""

    batches: Iterable
    targets: np.ndarray  # (clips, labels) bool
    label_names: list[str]
    task: str


def validate_rows(model: nn.Module, data: ValidationSet, precision: StepPrecision) -> dict:
    """Mean loss over all rows and the metric of their scores (one row per clip)."""
    model.eval()
    loss_of = task_loss(data.task)
    sums = np.zeros(data.targets.shape, np.float64)
    counts = np.zeros(data.targets.shape[0], np.int64)
    total, n = 0.0, 0
    with torch.inference_mode():
        for x, labels, clip in data.batches:
            with precision.autocast():
                logits = model(x.to(precision.device, non_blocking=True)).float()
            total += loss_of(logits, labels.to(precision.device)).item() * x.shape[0]
            n += x.shape[0]
            np.add.at(sums, clip.numpy(), outputs_to_scores(logits, data.task).cpu().numpy())
            np.add.at(counts, clip.numpy(), 1)
    model.train()
    return _summary(sums / np.maximum(counts, 1)[:, None], data.targets, data.task, data.label_names, total / max(n, 1))


def _summary(scores: np.ndarray, targets: np.ndarray, task: str, label_names: list[str], loss: float) -> dict:
    metrics = compute_metrics(scores, targets, task, label_names)
    name = "accuracy" if task == "multiclass" else "roc_auc"
    value = metrics[name]
    return {"loss": loss, "metric": f"valid_{name}", "value": float("nan") if value is None else value}
