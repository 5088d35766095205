"""The streaming inference engine: decode files in a process pool while the model runs batches.

Files are decoded (audio.decode: soundfile + soxr to the model's rate) by worker processes, a bounded
number ahead of the model, so memory stays flat in the number of files. Each decoded file is cut into
windows of the model's input size every `hop` samples (hop = window: the paper's non-overlapping
segments); a file shorter than one window is zero-padded to one and flagged `short`. Windows of
several files share a batch. A file's result is yielded as soon as its last window has been through
the model, in input order.

Per file the engine keeps what was asked for: the mean of the per-window scores (sigmoid for
multi-label, softmax for single-label, as evaluate), optionally every window's scores, the embedding
(the mean over windows of the 512-d embedding), every window's embedding, and multi-level features
(max and mean of hidden layers -3, -2, -1 over all windows and time steps, as `extract`).
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch

from samplecnn_cli.inference.decode import decode_file

LAYERS = (-3, -2, -1)


@dataclass
class FileResult:
    path: str
    error: str | None = None
    seconds: float = 0.0
    windows: int = 0
    short: bool = False  # shorter than one window: zero-padded to one
    scores: np.ndarray | None = None  # (L,) mean over windows
    window_scores: np.ndarray | None = None  # (W, L)
    embedding: np.ndarray | None = None  # (512,)
    window_embeddings: np.ndarray | None = None  # (W, 512)
    features: dict[int, dict[str, np.ndarray]] | None = None  # layer -> {"max": (C,), "avg": (C,)}


def window_starts(length: int, size: int, hop: int) -> np.ndarray:
    """Starts of the full windows of `size` every `hop` samples (one window at 0 for a short file)."""
    if length <= size:
        return np.zeros(1, np.int64)
    return np.arange(0, length - size + 1, hop, dtype=np.int64)


def windows_of(audio: np.ndarray, size: int, hop: int) -> np.ndarray:
    """(W, size) view of the windows (a padded copy for a short file)."""
    if audio.shape[0] < size:
        audio = np.pad(audio, (0, size - audio.shape[0]))
    count = len(window_starts(audio.shape[0], size, hop))
    return np.lib.stride_tricks.as_strided(audio, (count, size), (audio.strides[0] * hop, audio.strides[0]),
                                           writeable=False)


@dataclass
class _Open:
    """A file whose windows are (partly) still waiting for the model."""

    result: FileResult
    remaining: int
    score_sum: np.ndarray | None = None
    window_scores: list = field(default_factory=list)
    emb_sum: np.ndarray | None = None
    window_embeddings: list = field(default_factory=list)
    maxima: dict = field(default_factory=dict)
    sums: dict = field(default_factory=dict)
    steps: dict = field(default_factory=dict)  # time steps summed, per layer


class Engine:
    """Run `fast` (backend.FastModel) over files; see the module docstring.

    want: any of "scores", "window_scores", "embedding", "window_embeddings", "features".
    """

    def __init__(self, fast, *, sample_rate: int, task: str, batch_size: int, hop: int | None = None,
                 want: Iterable[str] = ("scores",), layers: tuple[int, ...] = LAYERS, workers: int | None = None):
        self.fast = fast
        self.rate = int(sample_rate)
        self.task = task
        self.batch_size = int(batch_size)
        self.size = int(fast.input_samples)
        self.hop = int(hop or self.size)
        self.want = set(want)
        self.layers = tuple(layers)
        self.workers = default_workers() if workers is None else int(workers)

    # -- decoding ------------------------------------------------------------------------------------
    def _decoded(self, paths: list[str]) -> Iterator[tuple[str, np.ndarray | None, str | None]]:
        """Decoded files in input order; at most a few ahead of the consumer."""
        if self.workers < 1 or len(paths) < 2:
            for path in paths:
                yield decode_file(path, self.rate)
            return
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        ahead = 2 * self.workers + 2
        # spawn: workers start clean (no copy of torch's thread pools), and import no torch
        with ProcessPoolExecutor(self.workers, mp_context=mp.get_context("spawn")) as pool:
            queue: deque = deque()
            todo = iter(paths)
            for path in todo:
                queue.append(pool.submit(decode_file, path, self.rate))
                if len(queue) >= ahead:
                    break
            while queue:
                result = queue.popleft().result()
                nxt = next(todo, None)
                if nxt is not None:
                    queue.append(pool.submit(decode_file, nxt, self.rate))
                yield result

    # -- the model -----------------------------------------------------------------------------------
    def run(self, paths: Iterable, on_file: Callable[[FileResult], None] | None = None) -> Iterator[FileResult]:
        """Yield one FileResult per path, in order (decode failures carry `error`)."""
        paths = [str(p) for p in paths]
        batch = np.empty((self.batch_size, self.size), np.float32)
        owners: list[_Open] = []  # the file of each filled row of `batch`
        waiting: deque[_Open] = deque()  # files in input order, not yet yielded

        def finished() -> Iterator[FileResult]:
            while waiting and waiting[0].remaining == 0:
                yield self._close(waiting.popleft())

        for path, audio, error in self._decoded(paths):
            if audio is None:
                waiting.append(_Open(FileResult(path=path, error=error), remaining=0))
                yield from finished()
                continue
            windows = windows_of(audio, self.size, self.hop)
            state = _Open(FileResult(path=path, seconds=audio.shape[0] / self.rate, windows=len(windows),
                                     short=audio.shape[0] < self.size), remaining=len(windows))
            waiting.append(state)
            for row in windows:
                batch[len(owners)] = row
                owners.append(state)
                if len(owners) == self.batch_size:
                    self._forward(batch, owners)
                    owners.clear()
                    yield from finished()
            del audio, windows
        if owners:
            self._forward(batch[:len(owners)], owners)
            owners.clear()
        yield from finished()

    def _forward(self, batch: np.ndarray, owners: list[_Open]) -> None:
        logits, hidden = self.fast(torch.from_numpy(batch))
        scores = None
        if self.want & {"scores", "window_scores"}:
            from samplecnn_cli.training.steps import outputs_to_scores

            scores = outputs_to_scores(logits, self.task).numpy()
        embeddings = hidden[-1].mean(dim=-1).numpy() if self.want & {"embedding", "window_embeddings"} else None
        pooled = {}
        if "features" in self.want:
            for layer in self.layers:
                h = hidden[layer]
                pooled[layer] = (h.amax(dim=-1).numpy(), h.sum(dim=-1, dtype=torch.float64).numpy(), h.shape[-1])
        for i, state in enumerate(owners):
            if scores is not None:
                state.score_sum = scores[i].astype(np.float64) + (0 if state.score_sum is None else state.score_sum)
                if "window_scores" in self.want:
                    state.window_scores.append(scores[i].copy())
            if embeddings is not None:
                state.emb_sum = embeddings[i].astype(np.float64) + (0 if state.emb_sum is None else state.emb_sum)
                if "window_embeddings" in self.want:
                    state.window_embeddings.append(embeddings[i].copy())
            for layer, (mx, sm, steps) in pooled.items():
                state.maxima[layer] = mx[i].copy() if layer not in state.maxima else np.maximum(state.maxima[layer], mx[i])
                state.sums[layer] = sm[i] + state.sums.get(layer, 0.0)
                state.steps[layer] = state.steps.get(layer, 0) + steps
            state.remaining -= 1

    def _close(self, state: _Open) -> FileResult:
        r = state.result
        if r.error is not None:
            return r
        n = r.windows
        if state.score_sum is not None:
            r.scores = (state.score_sum / n).astype(np.float32)
        if state.window_scores:
            r.window_scores = np.stack(state.window_scores)
        if state.emb_sum is not None:
            r.embedding = (state.emb_sum / n).astype(np.float32)
        if state.window_embeddings:
            r.window_embeddings = np.stack(state.window_embeddings)
        if state.maxima:
            r.features = {layer: {"max": state.maxima[layer].astype(np.float32),
                                  "avg": (state.sums[layer] / state.steps[layer]).astype(np.float32)}
                          for layer in self.layers}
        return r


def default_workers() -> int:
    """Decode workers: one core is left to the model (decoding is ~1/10 of the work on MP3s)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(4, cores // 2))
