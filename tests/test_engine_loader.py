"""Training batches never come short (issue 10): the epoch's remainder is folded into the batch before."""

from __future__ import annotations

import json

import pytest
import torch

from samplecnn_cli.core.errors import DataError
from samplecnn_cli.data.loader import FoldedBatchSampler, SegmentDataset, segment_loader, set_epoch
from samplecnn_cli.data.store import Store
from tests._store_fixtures import make_store, train_tiny_run


@pytest.mark.parametrize("remainder", [1, 2])
@pytest.mark.parametrize("world_size", [1, 2])
def test_folded_batches_cover_the_epoch_once_and_are_never_short(remainder, world_size):
    batch = 5
    n = world_size * (3 * batch + remainder)
    batches = []
    for rank in range(world_size):
        sampler = torch.utils.data.DistributedSampler(range(n), num_replicas=world_size, rank=rank, shuffle=True,
                                                      seed=0)
        folded = FoldedBatchSampler(sampler, batch)
        folded.set_epoch(3)
        rank_batches = list(folded)
        assert len(rank_batches) == len(folded) == 3  # the same step count on every rank
        batches += rank_batches
    assert min(len(b) for b in batches) == batch
    assert max(len(b) for b in batches) == batch + remainder
    assert sorted(i for b in batches for i in b) == list(range(n))


def test_an_epoch_smaller_than_a_batch_is_one_batch_and_one_segment_is_refused(tmp_path):
    store = Store(make_store(tmp_path / "s", seconds=0.1, clips=(1, 1, 1)))
    data = SegmentDataset(store.split("train"), 81)  # 9 segments
    loader = segment_loader(data, batch_size=23, shuffle=True)
    set_epoch(loader, 1)
    assert [len(x) for x, _, _ in loader] == [9]
    with pytest.raises(DataError, match="at least 2"):
        segment_loader(SegmentDataset(store.split("train"), 800), batch_size=23, shuffle=True)
    valid = segment_loader(data, batch_size=4, shuffle=False)
    assert [len(x) for x, _, _ in valid] == [4, 4, 1]  # validation is unaffected


@pytest.mark.parametrize("remainder", [1, 2])
def test_training_with_a_remainder_of_one_or_two_segments_trains(tmp_path, remainder):
    # make_store(seconds=0.1) gives 12 clips x 9 segments of sample-3^3's 81 samples = 108 segments;
    # a remainder of 1 used to crash: "Expected more than 1 value per channel when training"
    batch = 107 if remainder == 1 else 53
    run = train_tiny_run(tmp_path, epochs=1, batch_size=batch)
    row = json.loads((run / "metrics.jsonl").read_text())
    assert row["segments"] == 108 and 108 % batch == remainder
    assert torch.isfinite(torch.tensor(row["train_loss"]))


def test_threaded_batches_equal_in_loop_batches_and_direct_reads(tmp_path):
    from samplecnn_cli.data.segments import read_segment

    store = Store(make_store(tmp_path / "s", seconds=1.3, clips=(6, 1, 1)))  # clips end mid-segment: padding
    split = store.split("train")
    data = SegmentDataset(split, 729)
    assert data.audio.layout is not None  # raw chunked int16: read with os.preadv, not h5py
    orders = []
    for workers in (0, 2):
        loader = segment_loader(data, batch_size=7, shuffle=True, seed=1, workers=workers)
        set_epoch(loader, 2)
        orders.append(list(loader))
    assert len(orders[0]) == len(orders[1]) == len(data) // 7
    for (xa, ya, ca), (xb, yb, cb) in zip(*orders, strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb) and torch.equal(ca, cb)
    x, _, clips = orders[0][0]
    first = int(next(iter(loader.batch_sampler))[0])
    clip, start = data.index[first]
    assert int(clips[0]) == clip
    assert torch.equal(x[0], torch.from_numpy(read_segment(split, int(clip), int(start), 729)))
