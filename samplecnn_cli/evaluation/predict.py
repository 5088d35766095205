"""Song-level prediction: the model over every non-overlapping segment of each whole clip, averaged.

The model runs through samplecnn_cli.inference (batch norm folded, the fastest backend measured on this
machine for the requested precision; fp32 stays within 1e-3 of the eager model).
"""

from __future__ import annotations

import numpy as np
import torch

from samplecnn_cli.data.segments import clip_segments
from samplecnn_cli.data.store import StoreSplit
from samplecnn_cli.training.device import resolve_device, resolve_precision


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
    from samplecnn_cli.inference.backend import choose

    model.eval()
    fast, _ = choose(model, precision=precision, device=torch_device, batch_size=batch_size)
    n, num_labels = len(split), split.labels.shape[1]
    scores = np.zeros((n, num_labels), np.float32)
    pending, owners = [], []  # segments waiting for a batch, and the clip each belongs to

    def flush():
        segments = np.concatenate(pending)
        clip_of = np.concatenate(owners)
        out = score_segments(fast, segments, task=task, batch_size=batch_size)
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


def score_segments(fast, segments: np.ndarray, *, task: str, batch_size: int) -> np.ndarray:
    """Scores (S, L) of segments (S, T) through a FastModel (sigmoid for multilabel, else softmax)."""
    from samplecnn_cli.training.steps import outputs_to_scores

    out = []
    for i in range(0, segments.shape[0], batch_size):
        logits, _ = fast(torch.from_numpy(np.ascontiguousarray(segments[i:i + batch_size])))
        out.append(outputs_to_scores(logits, task).numpy())
    return np.concatenate(out)
