"""Pick the fastest way to run a model for inference on this machine, by measuring it.

Candidates (all from a batch-norm-folded copy, fold.py):
    eager       the folded model's own forward (any waveform model)
    plan        plan.SamplePlan: Conv2d channels-last, matmul first layer (plain sample-level models)
    plan-jit    the plan traced and frozen with TorchScript (fused conv+ReLU, prepacked weights)
each in fp32, and in bf16 where the CPU computes bf16 natively (never on an AVX2-only CPU or when
ONEDNN_MAX_CPU_ISA / ATEN_CPU_CAPABILITY force AVX2: both checks below read what PyTorch itself sees).
Every candidate is timed on the same synthetic batch, interleaved, and the best one is used; the choice
(backend, precision, batch size) is cached in a small JSON (the context's inference cache) per machine,
model, thread count and version of this code (a hash of backend.py, plan.py and fold.py: a change that
may change speed is measured again), so the measurement runs once. Nothing is keyed on CPU names.

`FastModel(x)` returns (logits, [hidden -3, -2, -1]) in float32 like ModelOutput, hidden as (B, C, T).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from samplecnn_cli.core.runtime import Runtime
from samplecnn_cli.inference.fold import fold_batch_norm
from samplecnn_cli.inference.plan import SamplePlan, supports_plan

BACKENDS = ("eager", "plan", "plan-jit")
BATCH_CANDIDATES = (4, 8, 16, 32)  # beyond 32 windows the activations outgrow the caches; see docs


@dataclass(frozen=True)
class Choice:
    backend: str
    precision: str  # fp32 | bf16
    batch_size: int | None
    measured: dict | None = None  # candidate -> segments/s, when measured now


class FastModel:
    """A folded model behind one of BACKENDS, called on float32 (B, samples) tensors."""

    def __init__(self, model: nn.Module, backend: str = "eager", precision: str = "fp32",
                 device: torch.device | str = "cpu", example_batch: int = 2):
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}")
        if backend != "eager" and not supports_plan(model):
            backend = "eager"
        self.backend, self.precision = backend, precision
        self.device = torch.device(device)
        self.input_samples = int(model.input_samples)
        self.dtype = torch.bfloat16 if precision == "bf16" else (torch.float16 if precision == "fp16" else torch.float32)
        folded = fold_batch_norm(model)
        if backend == "eager":
            self.module = folded.to(self.device, self.dtype)
        else:
            plan = SamplePlan(folded).eval().to(self.device, self.dtype)
            if backend == "plan-jit":
                example = torch.zeros(example_batch, self.input_samples, dtype=self.dtype, device=self.device)
                with torch.no_grad(), warnings.catch_warnings():
                    warnings.simplefilter("ignore", DeprecationWarning)  # still the fastest frozen CPU path
                    plan = torch.jit.freeze(torch.jit.trace(plan, example, check_trace=False))
            self.module = plan

    @torch.inference_mode()
    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        x = x.to(self.device, self.dtype, non_blocking=True)
        if self.backend == "eager":
            out = self.module.forward_all(x)
            logits, hidden = out.logits, list(out.hidden)
        else:
            logits, *hidden = self.module(x)
        return logits.float().cpu(), [h.float().cpu() for h in hidden]


def candidates(model: nn.Module, runtime: Runtime) -> list[tuple[str, str]]:
    """(backend, precision) pairs worth timing for the runtime (core/runtime.py: inference_precisions)."""
    backends = ["eager"]
    if runtime.device.type == "cpu" and supports_plan(model):
        backends += ["plan", "plan-jit"]
    return [(b, p) for p in runtime.inference_precisions() for b in backends]


@functools.cache
def code_revision() -> str:
    """A hash of the code whose speed is measured: a changed backend is timed again, never trusted."""
    here = Path(__file__).resolve().parent
    text = b"".join((here / name).read_bytes() for name in ("backend.py", "plan.py", "fold.py"))
    return hashlib.sha1(text).hexdigest()[:12]


def machine_key(model: nn.Module, precision: str, device: torch.device) -> str:
    """What the measurement depends on: the CPU as PyTorch sees it (ISA level, forced-ISA env vars),
    thread count, torch version, the backends' revision, the model's architecture and the precision."""
    arch = f"{type(model).__name__}:{getattr(model, 'name', '')}:{model.input_samples}:{model.num_outputs}"
    parts = [torch.__version__, code_revision(), str(device), torch.backends.cpu.get_cpu_capability(),
             os.environ.get("ONEDNN_MAX_CPU_ISA", ""), str(torch.get_num_threads()), _cpu_flags(), arch, precision]
    if device.type == "cuda":
        parts.append(torch.cuda.get_device_name(device))
    return hashlib.sha1("|".join(parts).encode()).hexdigest()[:16]


def _cpu_flags() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return hashlib.sha1(line.encode()).hexdigest()[:8]
    except OSError:
        pass
    return ""


def _read_cache(path: Path | None) -> dict:
    if path is None or not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}  # a damaged cache is remeasured, never fatal


def _write_cache(path: Path | None, key: str, choice: Choice) -> None:
    if path is None:
        return
    try:
        data = _read_cache(path)
        data[key] = {k: v for k, v in asdict(choice).items() if k != "measured"}
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
        tmp.write_text(json.dumps(data, indent=1))
        os.replace(tmp, path)
    except OSError:
        pass  # an unwritable cache only costs a remeasurement next time


def _throughput(fast: FastModel, batch: torch.Tensor, repeats: int) -> float:
    fast(batch)  # warm-up: oneDNN primitive creation, TorchScript's profiling runs
    if fast.backend == "plan-jit":
        fast(batch)
    best = float("inf")
    for _ in range(repeats):
        began = time.perf_counter()
        fast(batch)
        best = min(best, time.perf_counter() - began)
    return batch.shape[0] / best


def measure(model: nn.Module, pairs: list[tuple[str, str]], device: torch.device, *, batch: int = 4,
            repeats: int = 3) -> dict[tuple[str, str], float]:
    """Segments/s of each (backend, precision), the candidates interleaved and each one's best kept
    (the machine may be shared: the minimum time is the least disturbed one)."""
    x = torch.randn(batch, model.input_samples, generator=torch.Generator().manual_seed(0)) * 0.1
    built = {pair: FastModel(model, *pair, device=device, example_batch=batch) for pair in pairs}
    speed = {pair: _throughput(fast, x, 1) for pair, fast in built.items()}  # warm-up included once
    for _ in range(repeats - 1):
        for pair, fast in built.items():
            began = time.perf_counter()
            fast(x)
            speed[pair] = max(speed[pair], batch / (time.perf_counter() - began))
    return speed


def pick_batch_size(fast: FastModel, device: torch.device, sizes=BATCH_CANDIDATES) -> int:
    """The batch size with the best segments/s, trying sizes in order and stopping once it drops."""
    best_size, best_speed = sizes[0], 0.0
    for size in sizes:
        x = torch.randn(size, fast.input_samples) * 0.1
        speed = _throughput(fast, x, 1)
        if speed < best_speed * 0.97:
            break
        if speed > best_speed:
            best_size, best_speed = size, speed
    return best_size


def choose(model: nn.Module, runtime: Runtime, *, batch_size: int | None = None, backend: str | None = None,
           cache: Path | None = None) -> tuple[FastModel, Choice]:
    """The fastest FastModel for `model` under `runtime`, measured here (or read from `cache`, the
    context's inference cache file; None: measure without remembering)."""
    device = runtime.device
    model = model.eval()
    if device.type != "cpu":  # GPUs: the folded model in the runtime's precision, no timing needed
        return FastModel(model, "eager", runtime.precision, device), Choice("eager", runtime.precision, batch_size or 64)
    if backend is not None:
        fast = FastModel(model, backend, runtime.precision, device)
        return fast, Choice(fast.backend, runtime.precision, batch_size or pick_batch_size(fast, device))
    key = machine_key(model, runtime.requested, device)
    cached = _read_cache(cache).get(key)
    measured = None
    if cached and cached.get("backend") in BACKENDS:
        best_backend, best_precision = cached["backend"], cached["precision"]
        size = batch_size or cached.get("batch_size")
    else:
        speeds = measure(model, candidates(model, runtime), device)
        best_backend, best_precision = max(speeds, key=speeds.get)
        measured = {f"{b}/{p}": round(v, 2) for (b, p), v in speeds.items()}
        size = batch_size
    fast = FastModel(model, best_backend, best_precision, device)
    if size is None:
        size = pick_batch_size(fast, device)
        _write_cache(cache, key, Choice(fast.backend, fast.precision, size))
    elif measured is not None:
        _write_cache(cache, key, Choice(fast.backend, fast.precision, None))  # batch size still to measure
    return fast, Choice(fast.backend, fast.precision, int(size), measured=measured)
