"""The inference core: one batching loop that turns clips into segment batches and results per clip.

Every command that runs a model over audio goes through `Predictor.run`: evaluate, extract, tag, embed,
`bench infer`, and validation during training. What differs between them is pluggable:

    source    where clips come from: `decoded_files` (audio files decoded in worker processes, a bounded
              number ahead of the model), `store_clips` (a store split), `array_clips` (arrays in memory)
    forward   the model: the fastest folded backend measured here (`Predictor.for_model`, backend.py), the
              model as it is under autocast (`Predictor.eager`, training's validation), or ONNX Runtime
    reducers  what is kept per clip (reducers.py): mean scores, per-window scores, embeddings, per-layer
              max/avg features, the mean loss

Each clip is cut into windows of the model's input size every `hop` samples (hop = window: the paper's
non-overlapping segments); a clip shorter than one window is zero-padded to one and flagged `short`.
Windows of several clips share a batch, so short clips waste no batch slot, and a clip's result is
yielded as soon as its last window has been through the model, in input order.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from samplecnn_cli.core.runtime import Runtime
from samplecnn_cli.inference.reducers import BatchOutputs, Reducer, reducers_for


@dataclass
class Clip:
    """One input: `key` names it (a file path, or a clip's index in a store split)."""

    key: str | int
    audio: np.ndarray | None  # mono float32 at the model's rate; None when it could not be read
    error: str | None = None
    target: np.ndarray | None = None  # the clip's labels, for a loss


@dataclass
class ClipResult:
    """What the reducers kept of one clip (None where no reducer asked for it)."""

    key: str | int
    error: str | None = None
    seconds: float = 0.0
    windows: int = 0
    short: bool = False  # shorter than one window: zero-padded to one
    scores: np.ndarray | None = None  # (L,) mean over windows
    window_scores: np.ndarray | None = None  # (W, L)
    embedding: np.ndarray | None = None  # (512,)
    window_embeddings: np.ndarray | None = None  # (W, 512)
    features: dict[int, dict[str, np.ndarray]] | None = None  # layer -> {"max": (C,), "avg": (C,)}
    loss: float | None = None  # the mean loss over the clip's windows

    @property
    def path(self) -> str:
        return str(self.key)


# -- sources ------------------------------------------------------------------------------------------
def window_starts(length: int, size: int, hop: int) -> np.ndarray:
    """Starts of the full windows of `size` every `hop` samples (one window at 0 for a short clip)."""
    if length <= size:
        return np.zeros(1, np.int64)
    return np.arange(0, length - size + 1, hop, dtype=np.int64)


def windows_of(audio: np.ndarray, size: int, hop: int) -> np.ndarray:
    """(W, size) view of the windows (a padded copy for a short clip)."""
    if audio.shape[0] < size:
        audio = np.pad(audio, (0, size - audio.shape[0]))
    count = len(window_starts(audio.shape[0], size, hop))
    return np.lib.stride_tricks.as_strided(audio, (count, size), (audio.strides[0] * hop, audio.strides[0]),
                                           writeable=False)


def default_workers() -> int:
    """Decode workers: one core is left to the model (decoding is ~1/10 of the work on MP3s)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(4, cores // 2))


def decoded_files(paths: Iterable, sample_rate: int, workers: int | None = None) -> Iterator[Clip]:
    """Audio files decoded to mono at `sample_rate` (soundfile + soxr), in input order, decoded by
    `workers` spawned processes at most a few files ahead of the consumer (0: in this process)."""
    from samplecnn_cli.inference.decode import decode_file

    paths = [str(p) for p in paths]
    workers = default_workers() if workers is None else int(workers)
    if workers < 1 or len(paths) < 2:
        for path in paths:
            yield Clip(*decode_file(path, sample_rate))
        return
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    ahead = 2 * workers + 2
    # spawn: workers start clean (no copy of torch's thread pools), and import no torch
    with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
        todo = iter(paths)
        queue: deque = deque()
        for path in todo:
            queue.append(pool.submit(decode_file, path, sample_rate))
            if len(queue) >= ahead:
                break
        while queue:
            result = queue.popleft().result()
            nxt = next(todo, None)
            if nxt is not None:
                queue.append(pool.submit(decode_file, nxt, sample_rate))
            yield Clip(*result)


def store_clips(split, indices: Iterable[int] | None = None) -> Iterator[Clip]:
    """Whole clips of a store split (data/store.py StoreSplit), with their labels."""
    for index in range(len(split)) if indices is None else indices:
        yield Clip(int(index), split.read_float(int(index)), target=split.labels[int(index)])


def array_clips(arrays: Iterable[np.ndarray]) -> Iterator[Clip]:
    for index, audio in enumerate(arrays):
        yield Clip(index, np.asarray(audio, np.float32))


# -- the core -----------------------------------------------------------------------------------------
@dataclass
class _Open:
    """A clip whose windows are (partly) still waiting for the model."""

    result: ClipResult
    remaining: int
    target: np.ndarray | None
    accumulators: list


class Predictor:
    """`forward(x) -> (logits, hidden)` over float32 (B, input_samples) batches, fp32 on the CPU out."""

    def __init__(self, forward: Callable, *, input_samples: int, sample_rate: int, task: str, batch_size: int,
                 choice=None):
        self.forward = forward
        self.input_samples = int(input_samples)
        self.sample_rate = int(sample_rate)
        self.task = task
        self.batch_size = int(batch_size)
        self.choice = choice  # backend.Choice: how the forward was picked (None: eager)

    @classmethod
    def for_model(cls, model, runtime: Runtime, *, task: str, batch_size: int | None = None,
                  backend: str | None = None, cache=None) -> Predictor:
        """The fastest folded backend for `model` here (backend.choose), measured once per machine."""
        from samplecnn_cli.inference.backend import choose

        fast, choice = choose(model, runtime, batch_size=batch_size, backend=backend, cache=cache)
        return cls(fast, input_samples=fast.input_samples, sample_rate=int(model.sample_rate), task=task,
                   batch_size=choice.batch_size, choice=choice)

    @classmethod
    def eager(cls, model, runtime: Runtime, *, task: str, batch_size: int, input_samples: int,
              sample_rate: int) -> Predictor:
        """`model` as it is (eval mode, the runtime's autocast), logits only: validation while training."""

        @torch.inference_mode()
        def forward(x: torch.Tensor):
            with runtime.autocast():
                return model(x.to(runtime.device, non_blocking=True)).float(), []

        return cls(forward, input_samples=input_samples, sample_rate=sample_rate, task=task, batch_size=batch_size)

    def run(self, clips: Iterable[Clip], reducers: Iterable[Reducer] | Iterable[str] = ("scores",), *,
            hop: int | None = None) -> Iterator[ClipResult]:
        """Yield one ClipResult per clip, in order (clips that could not be read carry `error`)."""
        reducers = reducers_for(reducers)
        size, hop = self.input_samples, int(hop or self.input_samples)
        batch = np.empty((self.batch_size, size), np.float32)
        owners: list[_Open] = []  # the clip of each filled row of `batch`
        waiting: deque[_Open] = deque()  # clips in input order, not yet yielded

        def finished() -> Iterator[ClipResult]:
            while waiting and waiting[0].remaining == 0:
                yield self._close(waiting.popleft(), reducers)

        for clip in clips:
            state = self._open(clip, reducers, hop)
            waiting.append(state)
            if clip.audio is not None:
                for row in windows_of(clip.audio, size, hop):
                    batch[len(owners)] = row
                    owners.append(state)
                    if len(owners) == self.batch_size:
                        self._forward(batch, owners, reducers)
                        owners.clear()
                        yield from finished()
            yield from finished()
        if owners:
            self._forward(batch[:len(owners)], owners, reducers)
        yield from finished()

    def _open(self, clip: Clip, reducers: list[Reducer], hop: int) -> _Open:
        if clip.audio is None:
            return _Open(ClipResult(clip.key, error=clip.error), 0, None, [])
        length = clip.audio.shape[0]
        windows = len(window_starts(length, self.input_samples, hop))
        result = ClipResult(clip.key, seconds=length / self.sample_rate, windows=windows,
                            short=length < self.input_samples)
        return _Open(result, windows, clip.target, [r.start() for r in reducers])

    def _forward(self, batch: np.ndarray, owners: list[_Open], reducers: list[Reducer]) -> None:
        logits, hidden = self.forward(torch.from_numpy(batch))
        targets = None
        if owners[0].target is not None:
            targets = np.stack([o.target for o in owners])
        out = BatchOutputs(logits, hidden, self.task, targets)
        for reducer in reducers:
            reducer.prepare(out)
        for row, state in enumerate(owners):
            for reducer, acc in zip(reducers, state.accumulators, strict=True):
                reducer.add(acc, out, row)
            state.remaining -= 1

    @staticmethod
    def _close(state: _Open, reducers: list[Reducer]) -> ClipResult:
        result = state.result
        if result.error is None:
            for reducer, acc in zip(reducers, state.accumulators, strict=True):
                setattr(result, reducer.name, reducer.finish(acc, result.windows))
        return result
