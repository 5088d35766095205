"""Segment datasets and loaders for training: every non-overlapping segment of every clip.

The shuffle of each epoch comes from (seed, epoch) through DistributedSampler, also in a single
process (one replica): a resumed run and a 2-process run see the same order as the original run,
and with world size W each global batch of a W-process run holds exactly the segments of the
single-process batch at the same step.

Training batches never come short: the remainder of an epoch (fewer than `batch_size` segments) is
folded into the batch before it, so batch norm never takes its statistics (and its running
statistics) from a handful of values; a remainder of one used to crash training outright. Every
segment is still seen once per epoch. Validation and inference loaders keep plain batches.
"""

from __future__ import annotations

import itertools
from collections import deque
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from torch.utils.data import BatchSampler, Dataset, DistributedSampler, Sampler, SequentialSampler

from samplecnn_cli.core.errors import DataError
from samplecnn_cli.data.segments import AudioMap, segment_index
from samplecnn_cli.data.store import StoreSplit

MIN_TRAIN_BATCH = 2  # batch norm in training mode needs more than one value per channel


SAMPLINGS = ("grid", "random")


class _BatchReads(Dataset):
    """Item and batch access through `read_batch(indices)`, which subclasses define."""

    def __getitem__(self, i: int):
        segments, labels, clips = self.read_batch([i])
        return segments[0], labels[0], int(clips[0])

    def __getitems__(self, indices: list[int]):
        """A batch: (segments (B, T), labels (B, L), clip indices (B,))."""
        return self.read_batch(indices)


class SegmentDataset(_BatchReads):
    """Item i = (segment float32 (T,), labels bool as float32 (L,), clip index).

    Loaders fetch whole batches (`read_batch`): segments are read from the store file (AudioMap)
    straight into one batch tensor.

    `sampling` says where the segments of an epoch lie. "grid" (the paper): every non-overlapping
    segment, the same every epoch; a short clip sits at the start of its zero-padded segment.
    "random": as many segments per clip, each at a random offset drawn from (seed, epoch, item) - a
    fresh view of every long clip each epoch, the same in a resumed run and under DDP. A short clip
    stays at the start of its segment, where song-level prediction puts it (placing it at random
    slowed learning in our measurements: docs/training.md)."""

    def __init__(self, split: StoreSplit, input_samples: int, sampling: str = "grid", seed: int = 0):
        if sampling not in SAMPLINGS:
            raise ValueError(f"unknown sampling {sampling!r}")
        self.split = split
        self.input_samples = int(input_samples)
        self.index = segment_index(split, self.input_samples)
        self.labels = torch.from_numpy(split.labels.astype(np.float32))
        self.audio = AudioMap(split)
        self.sampling, self.seed, self.epoch = sampling, int(seed), 0
        self.lengths = np.asarray(split.clip_lengths, np.int64)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.index)

    def read_batch(self, indices: list[int], pin: bool = False, map_reads=map):
        """One batch: (audio (B, T) float32, labels, clip numbers). `map_reads` runs the per-segment
        reads (a thread pool's map keeps several disk reads in flight)."""
        indices = np.asarray(indices, np.int64)
        rows = self.index[indices]
        batch = _batch_tensor(len(rows), self.input_samples, pin)
        out = batch.numpy()

        def read(row: int) -> None:
            clip, start = int(rows[row, 0]), int(rows[row, 1])
            if self.sampling == "random":
                start = self._random_start(int(indices[row]), clip)
            self.audio.read_into(out[row], clip, start)

        for _ in map_reads(read, range(len(rows))):
            pass
        clips = torch.from_numpy(rows[:, 0].copy())
        return batch, self.labels[clips], clips

    def _random_start(self, item: int, clip: int) -> int:
        """Where item `item`'s segment starts in its clip this epoch."""
        spare = int(self.lengths[clip]) - self.input_samples
        if spare <= 0:
            return 0
        return int(np.random.default_rng((self.seed, self.epoch, item)).integers(0, spare + 1))


class JoinedSegments(_BatchReads):
    """Several SegmentDatasets as one (e.g. train + valid for `--train-splits train,valid`): items of
    the first, then of the next...; clip numbers run on across the parts, so they stay distinct."""

    def __init__(self, parts: list[SegmentDataset]):
        self.parts = list(parts)
        self.input_samples = self.parts[0].input_samples
        self.starts = np.cumsum([0] + [len(d) for d in self.parts])
        self.clip_starts = np.cumsum([0] + [len(d.split) for d in self.parts])

    def set_epoch(self, epoch: int) -> None:
        for part in self.parts:
            part.set_epoch(epoch)

    def __len__(self) -> int:
        return int(self.starts[-1])

    def read_batch(self, indices: list[int], pin: bool = False, map_reads=map):
        indices = np.asarray(indices, np.int64)
        which = np.searchsorted(self.starts, indices, side="right") - 1
        batch = _batch_tensor(len(indices), self.input_samples, pin)
        labels = torch.empty(len(indices), self.parts[0].labels.shape[1])
        clips = torch.empty(len(indices), dtype=torch.int64)
        for k, part in enumerate(self.parts):
            rows = torch.from_numpy(np.flatnonzero(which == k))
            if len(rows):
                x, y, c = part.read_batch((indices[rows.numpy()] - self.starts[k]).tolist(), False, map_reads)
                batch[rows], labels[rows], clips[rows] = x, y, c + int(self.clip_starts[k])
        return batch, labels, clips


def _batch_tensor(rows: int, samples: int, pin: bool = False) -> torch.Tensor:
    """An empty float32 (rows, samples) batch; pinned (page-locked, from PyTorch's caching host
    allocator, so reused) when it is bound for a GPU with a non-blocking copy."""
    return torch.empty(rows, samples, pin_memory=pin)


class FoldedBatchSampler(Sampler[list[int]]):
    """Batches of `batch_size` indices from `sampler`; a short last batch joins the one before it.

    So every batch holds batch_size .. 2 * batch_size - 1 indices (all of them when the epoch is
    smaller than one batch). Under DDP each rank's DistributedSampler yields the same count, so every
    rank makes the same number of steps.
    """

    def __init__(self, sampler: Sampler[int], batch_size: int):
        self.sampler, self.batch_size = sampler, int(batch_size)

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    def __len__(self) -> int:
        return max(1, len(self.sampler) // self.batch_size) if len(self.sampler) else 0

    def __iter__(self):
        indices = list(self.sampler)
        count = len(self)
        for b in range(count):
            stop = (b + 1) * self.batch_size if b < count - 1 else len(indices)
            yield indices[b * self.batch_size:stop]


READS_IN_FLIGHT = 8  # per batch worker; see SegmentLoader.__iter__


class SegmentLoader:
    """Batches of a SegmentDataset, read by `workers` threads of this process (0: in the loop itself).

    Threads, not DataLoader worker processes: a batch of 23 segments of 59,049 samples is 5.4 MB,
    and handing it over from a worker process costs a fresh shared-memory block per batch (measured
    ~11 ms per batch to allocate and fill on this project's VMs, more than reading it). Reads are
    positional system calls and numpy conversions, which release the GIL, so threads scale. With
    `pin_memory` (CUDA) batches are read straight into pinned memory for non-blocking copies."""

    def __init__(self, dataset: SegmentDataset, batch_sampler, workers: int = 0, pin_memory: bool = False):
        self.dataset, self.batch_sampler = dataset, batch_sampler
        self.workers, self.pin_memory = int(workers), bool(pin_memory)

    def __len__(self) -> int:
        return len(self.batch_sampler)

    def _read(self, indices, map_reads=map):
        return self.dataset.read_batch(list(indices), self.pin_memory, map_reads)

    def __iter__(self):
        for split in _splits_of(self.dataset):  # a store rewritten since the last epoch: one clear error
            split.check_unchanged()
        if self.workers == 0:
            yield from map(self._read, self.batch_sampler)
            return
        batches = iter(self.batch_sampler)
        # Each batch worker keeps READS_IN_FLIGHT segment reads waiting on the disk at once: a random
        # 118 KB read is latency-bound, so depth, not CPU, sets the rate of a store read cold.
        with ThreadPoolExecutor(self.workers, thread_name_prefix="segments") as pool, \
                ThreadPoolExecutor(self.workers * READS_IN_FLIGHT, thread_name_prefix="reads") as reads:
            pending = deque(pool.submit(self._read, b, reads.map) for b in itertools.islice(batches, 2 * self.workers))
            while pending:
                batch = pending.popleft().result()
                following = next(batches, None)
                if following is not None:
                    pending.append(pool.submit(self._read, following, reads.map))
                yield batch


def _splits_of(dataset) -> list[StoreSplit]:
    parts = getattr(dataset, "parts", [dataset])
    return [part.split for part in parts if isinstance(getattr(part, "split", None), StoreSplit)]


def segment_loader(dataset: SegmentDataset, *, batch_size: int, shuffle: bool, seed: int = 0,
                   world_size: int = 1, rank: int = 0, workers: int = 0,
                   pin_memory: bool = False) -> SegmentLoader:
    """A loader over `dataset`; with shuffle (training), call `set_epoch(loader, epoch)` before each epoch.

    `batch_size` is per process. Training (shuffle) batches are folded (see FoldedBatchSampler).
    Without shuffle (validation), every segment is read in order once, in plain batches.
    """
    if not shuffle:
        sampler = DistributedSampler(dataset, num_replicas=world_size, rank=rank, shuffle=False,
                                     drop_last=False) if world_size > 1 else SequentialSampler(dataset)
        return SegmentLoader(dataset, BatchSampler(sampler, batch_size, drop_last=False), workers, pin_memory)
    sampler = DistributedSampler(dataset, num_replicas=world_size, rank=rank, shuffle=True, seed=seed,
                                 drop_last=False)
    if len(sampler) < MIN_TRAIN_BATCH:
        raise DataError(f"only {len(dataset)} training segment(s) for {world_size} process(es): batch norm "
                        f"needs at least {MIN_TRAIN_BATCH} per process",
                        hint="add training clips, or use fewer processes")
    return SegmentLoader(dataset, FoldedBatchSampler(sampler, batch_size), workers, pin_memory)


def set_epoch(loader: SegmentLoader, epoch: int) -> None:
    """Reshuffle a training loader for `epoch` (the order and, with random sampling, the segments'
    offsets depend on (seed, epoch) only)."""
    loader.batch_sampler.set_epoch(epoch)
    loader.dataset.set_epoch(epoch)


def epoch_segments(loader: SegmentLoader) -> int:
    """Segments one process sees per epoch of a training loader."""
    return len(loader.batch_sampler.sampler)
