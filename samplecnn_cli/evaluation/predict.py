"""Song-level prediction: the model over every non-overlapping segment of each whole clip, averaged."""

from __future__ import annotations

import numpy as np
import torch

from samplecnn_cli.data.segments import clip_segments
from samplecnn_cli.data.store import StoreSplit
from samplecnn_cli.training.device import resolve_device, resolve_precision
from samplecnn_cli.training.steps import predict_segments


def predict_split(model, split: StoreSplit, *, batch_size: int = 64, device="cpu", precision: str = "fp32",
                  task: str | None = None, progress=None) -> tuple[np.ndarray, np.ndarray]:
    """(scores (N, L) float32, targets (N, L) bool) for every clip of `split`, in store order.

    Scores are sigmoid probabilities (multi-label) or softmax (single-label), the mean over a clip's
    segments. Segments of consecutive clips share batches, so short clips do not waste batch slots.
    `progress`, when given, is called with the number of clips scored so far after every batch.
    """
    task = task or split.task
    torch_device = device if isinstance(device, torch.device) else resolve_device(device)
    precision = resolve_precision(precision, torch_device)
    model.eval().to(torch_device)
    n, num_labels = len(split), split.labels.shape[1]
    scores = np.zeros((n, num_labels), np.float32)
    pending, owners = [], []  # segments waiting for a batch, and the clip each belongs to

    def flush():
        segments = np.concatenate(pending)
        clip_of = np.concatenate(owners)
        out = predict_segments(model, segments, task=task, batch_size=batch_size, device=torch_device,
                               precision=precision)
        sums = np.zeros((n, num_labels), np.float64)
        np.add.at(sums, clip_of, out)
        counts = np.bincount(clip_of, minlength=n)
        done = np.unique(clip_of)
        scores[done] = (sums[done] / counts[done, None]).astype(np.float32)
        pending.clear()
        owners.clear()
        if progress is not None:
            progress(int(done[-1]) + 1)

    buffered = 0
    for i in range(n):
        segments = clip_segments(split, i, model.input_samples)
        pending.append(segments)
        owners.append(np.full(segments.shape[0], i, np.int64))
        buffered += segments.shape[0]
        if buffered >= batch_size:
            flush()
            buffered = 0
    if pending:
        flush()
    return scores, split.labels.astype(bool).copy()
