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
    """How a step runs at one precision: the autocast, loss scaling (fp16 only), backward + step.

    bf16 and fp32 need no scaler; fp16 gradients underflow without one. `state_dict` is what a
    checkpoint keeps (the scaler's scale), so a resumed fp16 run goes on with the same scale."""

    device: torch.device
    name: str  # fp32 | bf16 | fp16 (resolved)

    def __post_init__(self):
        self.scaler = torch.amp.GradScaler("cuda") if self.name == "fp16" else None

    @classmethod
    def resolve(cls, requested: str, device: torch.device) -> Precision:
        return cls(device, resolve_precision(requested, device))

    def autocast(self):
        return autocast(self.device, self.name)

    def grad_scaler(self):
        return self.scaler

    def backward_step(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
        """Gradients of `loss` and one optimizer step (scaled under fp16)."""
        optimizer.zero_grad(set_to_none=True)
        if self.scaler is None:
            loss.backward()
            optimizer.step()
            return
        self.scaler.scale(loss).backward()
        self.scaler.step(optimizer)
        self.scaler.update()

    def state_dict(self) -> dict | None:
        return self.scaler.state_dict() if self.scaler is not None else None

    def load_state_dict(self, state: dict | None) -> None:
        if self.scaler is not None and state:
            self.scaler.load_state_dict(state)


def configure_threads(local_world_size: int = 1) -> int:
    """Share the CPU cores among the processes of this machine (DDP on CPU); returns threads used."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    threads = max(1, cores // max(1, local_world_size))
    torch.set_num_threads(threads)
    return threads
