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

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from samplecnn_cli.data.segments import read_segment, segment_index
from samplecnn_cli.data.store import StoreSplit
from samplecnn_cli.errors import DataError

MIN_TRAIN_BATCH = 2  # batch norm in training mode needs more than one value per channel


class SegmentDataset(Dataset):
    """Item i = (segment float32 (T,), labels bool as float32 (L,), clip index)."""

    def __init__(self, split: StoreSplit, input_samples: int):
        self.split = split
        self.input_samples = int(input_samples)
        self.index = segment_index(split, self.input_samples)
        self.labels = torch.from_numpy(split.labels.astype(np.float32))

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int):
        clip, start = (int(v) for v in self.index[i])
        segment = read_segment(self.split, clip, start, self.input_samples)
        return torch.from_numpy(segment), self.labels[clip], clip


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


def segment_loader(dataset: SegmentDataset, *, batch_size: int, shuffle: bool, seed: int = 0,
                   world_size: int = 1, rank: int = 0, workers: int = 0,
                   pin_memory: bool = False) -> DataLoader:
    """A loader over `dataset`; with shuffle (training), call `set_epoch(loader, epoch)` before each epoch.

    `batch_size` is per process. Training (shuffle) batches are folded (see FoldedBatchSampler).
    Without shuffle (validation), every segment is read in order once, in plain batches.
    """
    common = dict(num_workers=workers, pin_memory=pin_memory, persistent_workers=workers > 0)
    if not shuffle:
        sampler = DistributedSampler(dataset, num_replicas=world_size, rank=rank, shuffle=False,
                                     drop_last=False) if world_size > 1 else None
        return DataLoader(dataset, batch_size=batch_size, sampler=sampler, **common)
    sampler = DistributedSampler(dataset, num_replicas=world_size, rank=rank, shuffle=True, seed=seed,
                                 drop_last=False)
    if len(sampler) < MIN_TRAIN_BATCH:
        raise DataError(f"only {len(dataset)} training segment(s) for {world_size} process(es): batch norm "
                        f"needs at least {MIN_TRAIN_BATCH} per process",
                        hint="add training clips, or use fewer processes")
    return DataLoader(dataset, batch_sampler=FoldedBatchSampler(sampler, batch_size), **common)


def set_epoch(loader: DataLoader, epoch: int) -> None:
    """Reshuffle a training loader for `epoch` (the order depends on (seed, epoch) only)."""
    loader.batch_sampler.set_epoch(epoch)


def epoch_segments(loader: DataLoader) -> int:
    """Segments one process sees per epoch of a training loader."""
    return len(loader.batch_sampler.sampler)
