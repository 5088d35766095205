"""The runtime: where a model runs and at which precision, resolved in one place for training and
inference alike, and the task head (scores and loss of a task's logits).

One vocabulary. Device: auto | cpu | cuda | cuda:N. Precision: auto | fp32 | bf16 | fp16.
`auto` means bf16 where this device computes bf16 natively, else fp32: a CPU with AVX-512 BF16 or AMX
as PyTorch sees it (never when ONEDNN_MAX_CPU_ISA / ATEN_CPU_CAPABILITY force AVX2), or a GPU with
bf16 (Ampere and later). fp16 needs a CUDA GPU. Inference under `auto` may also time fp32 and keep it
when it is faster here (`inference_precisions`); an explicit precision is always obeyed.

`Runtime.resolve` is the only function that turns the user's words into a device and a precision;
the CLI calls it once per command and passes the Runtime down. `StepPrecision` owns what a training
step does at that precision: autocast, backward, optimizer step and (fp16) loss scaling.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import torch
from torch import nn

from samplecnn_cli.core.errors import UsageError

DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
TASKS = ("multilabel", "multiclass")


def check_device(device: str) -> str:
    if device not in DEVICES and not device.startswith("cuda:"):
        raise UsageError(f"unknown device '{device}'", hint="use auto, cpu or cuda")
    return device


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise UsageError(f"unknown precision '{precision}'", hint="use fp32, bf16 or fp16 (or auto)")
    return precision


def resolve_device(device: str = "auto", local_rank: int = 0) -> torch.device:
    check_device(device)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UsageError("--device cuda but no CUDA GPU is available", hint="use --device cpu")
        return torch.device(device if ":" in device else f"cuda:{local_rank}")
    return torch.device("cpu")


def native_bf16(device: torch.device) -> bool:
    """True where bf16 convolutions run natively on `device`, as PyTorch itself sees it."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:
        supported = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False
    # a forced AVX2 kernel level (ATEN_CPU_CAPABILITY) means no bf16 units, whatever the CPU flags say
    return supported and torch.backends.cpu.get_cpu_capability() not in ("DEFAULT", "AVX2", "NO AVX")


@dataclass(frozen=True)
class Runtime:
    """A resolved device and precision (fp32 | bf16 | fp16); `requested` is what the user asked for."""

    device: torch.device
    precision: str
    requested: str = "auto"

    @classmethod
    def resolve(cls, device: str = "auto", precision: str = "auto", local_rank: int = 0) -> Runtime:
        check_precision(precision)
        torch_device = resolve_device(device, local_rank)
        if precision == "auto":
            return cls(torch_device, "bf16" if native_bf16(torch_device) else "fp32", "auto")
        if precision == "fp16" and torch_device.type != "cuda":
            raise UsageError("fp16 needs a CUDA GPU (CPU autocast has no fp16 path worth using)",
                             hint="use --precision bf16 on CPU")
        return cls(torch_device, precision, precision)

    @classmethod
    def cpu(cls, precision: str = "fp32") -> Runtime:
        """A CPU runtime at a concrete precision (tests, benchmarks, the decode-free paths)."""
        return cls(torch.device("cpu"), precision, precision)

    def autocast(self):
        """The autocast context of a forward pass at this precision (fp32: nothing)."""
        if self.precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        return torch.autocast(device_type=self.device.type, dtype=dtype)

    def inference_precisions(self) -> list[str]:
        """The precisions inference may time and choose from: both natives under `auto` on a CPU."""
        if self.requested == "auto" and self.device.type == "cpu" and self.precision == "bf16":
            return ["fp32", "bf16"]
        return [self.precision]

    def step_precision(self) -> StepPrecision:
        return StepPrecision(self)


@dataclass
class StepPrecision:
    """How a training step runs at the runtime's precision: autocast, backward, optimizer step, and
    loss scaling under fp16 (its gradients underflow without it; bf16 and fp32 need none).
    `state_dict` is what a checkpoint keeps (the scaler's scale), so a resumed fp16 run goes on alike."""

    runtime: Runtime
    scaler: torch.amp.GradScaler | None = field(init=False, default=None)

    def __post_init__(self):
        if self.runtime.precision == "fp16":
            self.scaler = torch.amp.GradScaler("cuda")

    @property
    def device(self) -> torch.device:
        return self.runtime.device

    @property
    def name(self) -> str:
        return self.runtime.precision

    def autocast(self):
        return self.runtime.autocast()

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


# -- the task head: what a task's logits mean ---------------------------------------------------------
def outputs_to_scores(logits: torch.Tensor, task: str) -> torch.Tensor:
    """Sigmoid probabilities for multi-label, softmax for single-label, in fp32."""
    logits = logits.float()
    return torch.sigmoid(logits) if task == "multilabel" else torch.softmax(logits, dim=1)


def loss_function(task: str) -> nn.Module:
    """Sigmoid + binary cross-entropy for multi-label, softmax + cross-entropy for single-label."""
    return nn.BCEWithLogitsLoss() if task == "multilabel" else nn.CrossEntropyLoss()


def loss_targets(labels: torch.Tensor, task: str) -> torch.Tensor:
    """Multi-hot float targets for BCE, class indices for cross-entropy (labels are one-hot there)."""
    return labels.float() if task == "multilabel" else labels.float().argmax(dim=1)


def task_loss(task: str):
    """loss(logits, labels) in fp32, with the targets the task's loss takes (see loss_targets)."""
    loss_fn = loss_function(task)
    return lambda logits, labels: loss_fn(logits.float(), loss_targets(labels, task))
