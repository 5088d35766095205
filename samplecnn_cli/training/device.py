"""Device and numeric precision: which device, which autocast, whether a GradScaler is needed."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch

from samplecnn_cli.errors import UsageError
from samplecnn_cli.training.config import DEVICES, PRECISIONS


def resolve_device(device: str = "auto", local_rank: int = 0) -> torch.device:
    if device not in DEVICES and not device.startswith("cuda:"):
        raise UsageError(f"unknown device '{device}'", hint="use auto, cpu or cuda")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UsageError("--device cuda but no CUDA GPU is available", hint="use --device cpu")
        return torch.device(device if ":" in device else f"cuda:{local_rank}")
    return torch.device("cpu")


def fast_bf16(device: torch.device) -> bool:
    """True where bf16 matmul/conv run natively (AVX-512 BF16/AMX CPUs, Ampere+ GPUs)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_precision(precision: str, device: torch.device) -> str:
    if precision not in PRECISIONS:
        raise UsageError(f"unknown precision '{precision}'", hint="use fp32, bf16 or fp16 (or auto)")
    if precision == "auto":
        return "bf16" if fast_bf16(device) else "fp32"
    if precision == "fp16" and device.type != "cuda":
        raise UsageError("fp16 needs a CUDA GPU (CPU autocast has no fp16 path worth using)",
                         hint="use --precision bf16 on CPU")
    return precision


def autocast(device: torch.device, precision: str):
    """The autocast context for a forward pass at `precision` (fp32: nothing)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


@dataclass
class Precision:
    device: torch.device
    name: str  # fp32 | bf16 | fp16 (resolved)

    def autocast(self):
        return autocast(self.device, self.name)

    def grad_scaler(self):
        """fp16 gradients underflow without loss scaling; bf16 and fp32 need none."""
        return torch.amp.GradScaler("cuda") if self.name == "fp16" else None


def configure_threads(local_world_size: int = 1) -> int:
    """Share the CPU cores among the processes of this machine (DDP on CPU); returns threads used."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    threads = max(1, cores // max(1, local_world_size))
    torch.set_num_threads(threads)
    return threads
