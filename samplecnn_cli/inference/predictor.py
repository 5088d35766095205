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
from itertools import islice

import numpy as np
import torch

from samplecnn_cli.core.runtime import Runtime
from samplecnn_cli.inference.reducers import BatchOutputs, Reducer, reducers_for


class ClipError(Exception):
    """A clip that fails while its pieces arrive (a file broken half way): its result carries the reason."""


@dataclass
class Clip:
    """One input: `key` names it (a file path, or a clip's index in a store split). Its audio is given
    whole (`audio`) or as it is read, in pieces (`pieces`: a long file, in bounded memory)."""

    key: str | int
    audio: np.ndarray | None  # mono float32 at the model's rate; None when it could not be read
    error: str | None = None
    target: np.ndarray | None = None  # the clip's labels, for a loss
    pieces: Iterable[np.ndarray] | None = None  # instead of `audio`; may raise ClipError

    def parts(self) -> Iterable[np.ndarray]:
        return self.pieces if self.pieces is not None else [self.audio]

    @property
    def readable(self) -> bool:
        return self.audio is not None or self.pieces is not None


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


class WindowCutter:
    """The windows of `window_starts` of a clip whose audio arrives in pieces: `feed` each piece (rows
    are views, to copy before the next piece), then `finish` (the one zero-padded window of a clip
    shorter than a window). Holds less than a window plus one piece."""

    def __init__(self, size: int, hop: int):
        self.size, self.hop = size, hop
        self.buffer = np.zeros(0, np.float32)
        self.offset = 0  # the clip's sample at buffer[0]
        self.next_start = 0
        self.length = self.windows = 0

    def feed(self, piece: np.ndarray) -> np.ndarray:
        self.length += piece.shape[0]
        audio = piece if not self.buffer.shape[0] else np.concatenate([self.buffer, piece])
        local = self.next_start - self.offset
        count = (audio.shape[0] - local - self.size) // self.hop + 1 if audio.shape[0] - local >= self.size else 0
        rows = np.zeros((0, self.size), np.float32)
        if count > 0:
            rows = windows_of(audio[local:local + (count - 1) * self.hop + self.size], self.size, self.hop)
            self.next_start += count * self.hop
            self.windows += count
        drop = min(audio.shape[0], self.next_start - self.offset)
        self.buffer, self.offset = audio[drop:].copy(), self.offset + drop
        return rows

    def finish(self) -> np.ndarray:
        if self.windows:
            return np.zeros((0, self.size), np.float32)
        self.windows = 1
        return np.pad(self.buffer, (0, self.size - self.buffer.shape[0]))[None]


def default_workers() -> int:
    """Decode workers: one core is left to the model (decoding is ~1/10 of the work on MP3s)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(4, cores // 2))


def decoded_files(paths: Iterable, sample_rate: int, workers: int | None = None) -> Iterator[Clip]:
    """Audio files decoded to mono at `sample_rate` (soundfile + soxr), in input order, decoded by
    `workers` spawned processes at most a few files ahead of the consumer (0: in this process). Files
    longer than audio.STREAM_AFTER_SECONDS are streamed in pieces in this process (bounded memory).
    Close the iterator (contextlib.closing) to stop the workers at once on an error or an interrupt."""
    from samplecnn_cli.inference.decode import decode_file, file_clip

    paths = [str(p) for p in paths]
    workers = default_workers() if workers is None else int(workers)
    if workers < 1 or len(paths) < 2:
        for path in paths:
            yield file_clip(path, sample_rate)
        return
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    from samplecnn_cli.core import signals

    # spawn: workers start clean (no torch); they ignore Ctrl-C and die with this process (signals.py)
    pool = ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=signals.quiet_worker)

    def submit(path: str):
        with signals.blocked():  # a worker may start here: no signal before its handlers are set
            return pool.submit(decode_file, path, sample_rate)

    try:
        todo = iter(paths)
        queue: deque = deque(submit(p) for p in islice(todo, 2 * workers + 2))
        while queue:
            path, audio, error, long = queue.popleft().result()
            nxt = next(todo, None)
            if nxt is not None:
                queue.append(submit(nxt))
            yield file_clip(path, sample_rate) if long else Clip(path, audio, error)
    finally:
        _stop(pool)


def _stop(pool) -> None:
    """Stop a decoding pool on any exit (an error, Ctrl-C, SIGTERM): queued files are dropped and the
    few decodes already handed to the workers (at most workers + 1, each a file of ten minutes or
    less) finish; then the workers exit, so nothing outlives the consumer. (Killing a worker while it
    sends its result leaves the pool's reader thread blocked on half a message: the process could not
    exit.)"""
    pool.shutdown(wait=True, cancel_futures=True)


STORE_PIECE = 1 << 22  # samples of a store clip read at a time (a clip of a few minutes is one piece)


def store_clips(split, indices: Iterable[int] | None = None) -> Iterator[Clip]:
    """Whole clips of a store split (data/store.py StoreSplit), with their labels, read in pieces."""
    for index in range(len(split)) if indices is None else indices:
        index = int(index)
        length = int(split.offsets[index + 1] - split.offsets[index])
        if length <= STORE_PIECE:
            yield Clip(index, split.read_float(index), target=split.labels[index])
            continue
        pieces = (split.read_float(index, start, start + STORE_PIECE) for start in range(0, length, STORE_PIECE))
        yield Clip(index, None, target=split.labels[index], pieces=pieces)


def array_clips(arrays: Iterable[np.ndarray]) -> Iterator[Clip]:
    for index, audio in enumerate(arrays):
        yield Clip(index, np.asarray(audio, np.float32))


# -- the core -----------------------------------------------------------------------------------------
@dataclass
class _Open:
    """A clip whose windows are (partly) still waiting for the model."""

    result: ClipResult
    remaining: int  # windows in a batch, not yet through the model
    target: np.ndarray | None
    accumulators: list
    ended: bool = False  # every window of the clip has been cut

    @property
    def done(self) -> bool:
        return self.ended and self.remaining == 0


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
            while waiting and waiting[0].done:
                yield self._close(waiting.popleft(), reducers)

        def add(rows: np.ndarray, state: _Open) -> Iterator[ClipResult]:
            for row in rows:
                batch[len(owners)] = row
                owners.append(state)
                state.remaining += 1
                if len(owners) == self.batch_size:
                    self._forward(batch, owners, reducers)
                    owners.clear()
                    yield from finished()

        for clip in clips:
            state = self._open(clip, reducers)
            waiting.append(state)
            if clip.readable:
                cutter = WindowCutter(size, hop)
                try:
                    for piece in clip.parts():
                        yield from add(cutter.feed(piece), state)
                    yield from add(cutter.finish(), state)
                except ClipError as exc:
                    state.result.error = str(exc)
                self._measure(state.result, cutter)
            state.ended = True
            yield from finished()
        if owners:
            self._forward(batch[:len(owners)], owners, reducers)
        yield from finished()

    def _open(self, clip: Clip, reducers: list[Reducer]) -> _Open:
        if not clip.readable:
            return _Open(ClipResult(clip.key, error=clip.error), 0, None, [])
        return _Open(ClipResult(clip.key), 0, clip.target, [r.start() for r in reducers])

    def _measure(self, result: ClipResult, cutter: WindowCutter) -> None:
        result.seconds = cutter.length / self.sample_rate
        result.windows = cutter.windows
        result.short = cutter.length < self.input_samples

    def _forward(self, batch: np.ndarray, owners: list[_Open], reducers: list[Reducer]) -> None:
        logits, hidden = self.forward(torch.from_numpy(batch))
        targets = None
        if owners[0].target is not None:
            targets = np.stack([o.target for o in owners])
        out = BatchOutputs(logits, hidden, self.task, targets)
        for reducer in reducers:
            reducer.prepare(out)
        for row, state in enumerate(owners):
            if state.result.error is None:  # a clip that broke half way keeps no results
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
