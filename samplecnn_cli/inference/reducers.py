"""What the inference core keeps of each clip: one reducer per kind of result.

A reducer turns the model's outputs for a clip's windows (which arrive row by row, spread over batches)
into one value per clip. `prepare(out)` runs once per batch (the batch-wide work: a softmax, a pooling),
`add(acc, out, row)` once per window, `finish(acc, windows)` once per clip. Its `name` is the ClipResult
field the value lands in. Sums are kept in float64, so a clip's mean does not depend on how its windows
were batched.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch

from samplecnn_cli.core.runtime import outputs_to_scores

LAYERS = (-3, -2, -1)  # the hidden layers the multi-level features come from


@dataclass
class BatchOutputs:
    """One forward pass: fp32 logits (B, L), hidden layers [(B, C, T)], and the rows' targets if any."""

    logits: torch.Tensor
    hidden: list[torch.Tensor]
    task: str
    targets: np.ndarray | None = None
    pooled: dict | None = None  # LayerPools: layer -> (max, sum, time steps) per row
    losses: np.ndarray | None = None  # MeanLoss: per row
    _scores: np.ndarray | None = None
    _embeddings: np.ndarray | None = None

    def scores(self) -> np.ndarray:
        if self._scores is None:
            self._scores = outputs_to_scores(self.logits, self.task).cpu().numpy()
        return self._scores

    def embeddings(self) -> np.ndarray:
        """The penultimate layer averaged over time: (B, 512)."""
        if self._embeddings is None:
            self._embeddings = self.hidden[-1].mean(dim=-1).numpy()
        return self._embeddings


class Reducer:
    name = ""

    def start(self):
        return {}

    def prepare(self, out: BatchOutputs) -> None:
        pass

    def add(self, acc, out: BatchOutputs, row: int) -> None:
        raise NotImplementedError

    def finish(self, acc, windows: int):
        raise NotImplementedError


class MeanScores(Reducer):
    """Sigmoid (multi-label) or softmax (single-label) scores averaged over the clip's windows."""

    name = "scores"

    def prepare(self, out):
        out.scores()

    def add(self, acc, out, row):
        value = out.scores()[row].astype(np.float64)
        acc["sum"] = value if "sum" not in acc else acc["sum"] + value

    def finish(self, acc, windows):
        return (acc["sum"] / windows).astype(np.float32)


class WindowScores(Reducer):
    """Every window's scores, (W, L): the timeline of `tag --timeline`."""

    name = "window_scores"

    def start(self):
        return []

    def add(self, acc, out, row):
        acc.append(out.scores()[row].copy())

    def finish(self, acc, windows):
        return np.stack(acc)


class MeanEmbedding(Reducer):
    name = "embedding"

    def add(self, acc, out, row):
        value = out.embeddings()[row].astype(np.float64)
        acc["sum"] = value if "sum" not in acc else acc["sum"] + value

    def finish(self, acc, windows):
        return (acc["sum"] / windows).astype(np.float32)


class WindowEmbeddings(Reducer):
    name = "window_embeddings"

    def start(self):
        return []

    def add(self, acc, out, row):
        acc.append(out.embeddings()[row].copy())

    def finish(self, acc, windows):
        return np.stack(acc)


class LayerPools(Reducer):
    """Max and mean of hidden layers over all windows and time steps (Section 4.1's song-level features)."""

    name = "features"

    def __init__(self, layers: Iterable[int] = LAYERS):
        self.layers = tuple(layers)

    def prepare(self, out):
        out.pooled = {layer: (out.hidden[layer].amax(dim=-1).numpy(),
                              out.hidden[layer].sum(dim=-1, dtype=torch.float64).numpy(),
                              out.hidden[layer].shape[-1]) for layer in self.layers}

    def add(self, acc, out, row):
        for layer, (maxima, sums, steps) in out.pooled.items():
            if layer in acc:
                np.maximum(acc[layer][0], maxima[row], out=acc[layer][0])
                acc[layer][1] += sums[row]
                acc[layer][2] += steps
            else:
                acc[layer] = [maxima[row].copy(), sums[row].copy(), steps]

    def finish(self, acc, windows):
        return {layer: {"max": acc[layer][0].astype(np.float32), "avg": (acc[layer][1] / acc[layer][2]).astype(np.float32)}
                for layer in self.layers}


class MeanLoss(Reducer):
    """The task's loss (fp32, as training computes it) averaged over the clip's windows; needs targets."""

    name = "loss"

    def prepare(self, out):
        from samplecnn_cli.core.runtime import loss_targets

        logits = out.logits.float()
        targets = loss_targets(torch.from_numpy(out.targets).to(logits.device), out.task)
        if out.task == "multilabel":
            losses = torch.nn.functional.binary_cross_entropy_with_logits(logits, targets, reduction="none").mean(1)
        else:
            losses = torch.nn.functional.cross_entropy(logits, targets, reduction="none")
        out.losses = losses.double().cpu().numpy()

    def add(self, acc, out, row):
        acc["sum"] = acc.get("sum", 0.0) + float(out.losses[row])

    def finish(self, acc, windows):
        return acc["sum"] / windows


REDUCERS = {"scores": MeanScores, "window_scores": WindowScores, "embedding": MeanEmbedding,
            "window_embeddings": WindowEmbeddings, "features": LayerPools, "loss": MeanLoss}


def reducers_for(wanted: Iterable) -> list[Reducer]:
    """Reducer objects for names ("scores", "features"...) or reducers given as they are."""
    return [REDUCERS[w]() if isinstance(w, str) else w for w in wanted]
