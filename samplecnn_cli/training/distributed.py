"""torchrun support: when WORLD_SIZE is set, one process per rank, DDP, rank 0 alone writes.

gloo on CPU, NCCL on CUDA. No home-made launcher: start with
    torchrun --nproc-per-node 2 -m samplecnn_cli train MODEL --data DIR --out RUN
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from samplecnn_cli.core.context import DistInfo  # read from torchrun's variables once, by the CLI


def init(info: DistInfo, device: torch.device) -> None:
    if info.enabled and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")


def shutdown(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def broadcast(info: DistInfo, value):
    """Rank 0's `value` on every rank (a small picklable object)."""
    if not info.enabled:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def all_reduce_mean(info: DistInfo, values: list[float], device: torch.device) -> list[float]:
    if not info.enabled:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)  # NCCL reduces CUDA tensors only
    dist.all_reduce(t)
    return (t / info.world_size).tolist()
