"""Segment datasets and loaders for training: every non-overlapping segment of every clip.

The shuffle of each epoch comes from (seed, epoch) through DistributedSampler, also in a single
process (one replica): a resumed run and a 2-process run see the same order as the original run,
and with world size W each global batch of a W-process run holds exactly the segments of the
single-process batch at the same step.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from samplecnn_cli.data.segments import read_segment, segment_index
from samplecnn_cli.data.store import StoreSplit


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


def segment_loader(dataset: SegmentDataset, *, batch_size: int, shuffle: bool, seed: int = 0,
                   world_size: int = 1, rank: int = 0, workers: int = 0,
                   pin_memory: bool = False) -> DataLoader:
    """A loader over `dataset`; with shuffle, call loader.sampler.set_epoch(epoch) before each epoch.

    `batch_size` is per process. Without shuffle (validation), every segment is read in order once.
    """
    sampler = DistributedSampler(dataset, num_replicas=world_size, rank=rank, shuffle=shuffle, seed=seed,
                                 drop_last=False) if shuffle or world_size > 1 else None
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, shuffle=False, num_workers=workers,
                      pin_memory=pin_memory, persistent_workers=workers > 0, drop_last=False)
