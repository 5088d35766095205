"""Throughput of the training step and of inference, through the very functions train/evaluate/tag run
(training.steps.train_step, and samplecnn_cli.inference for infer), on synthetic segments of the model's input size."""

from __future__ import annotations

import time

from samplecnn_cli.core.memory import allocator_state
from samplecnn_cli.core.runtime import Runtime


def bench(mode: str, model_name: str, runtime: Runtime, *, batch_size: int = 23, steps: int = 5, warmup: int = 1,
          num_outputs: int = 50, task: str = "multilabel", seed: int = 0, cache=None) -> dict:
    """Segments per second of `mode` ("train" or "infer") for `model_name` at `batch_size`."""
    import torch

    from samplecnn_cli.core.errors import UsageError
    from samplecnn_cli.models.registry import create_model

    if mode not in ("train", "infer"):
        raise UsageError(f"unknown bench mode '{mode}'", hint="use train or infer")
    if batch_size < 1 or steps < 1 or warmup < 0:
        raise UsageError("--batch-size and --steps must be positive")
    torch_device = runtime.device
    torch.manual_seed(seed)
    model = create_model(model_name, num_outputs=num_outputs).to(torch_device)
    x = torch.randn(batch_size, model.input_samples) * 0.1
    labels = torch.zeros(batch_size, num_outputs)
    labels[torch.arange(batch_size), torch.randint(0, num_outputs, (batch_size,))] = 1.0
    if mode == "train":
        step, precision, backend = _train_step(model, runtime, x, labels, task), runtime.precision, None
    else:
        step, precision, backend = _infer_step(model, runtime, x, task, cache)

    def sync():
        if torch_device.type == "cuda":
            torch.cuda.synchronize(torch_device)

    began = time.perf_counter()
    for _ in range(warmup):
        step()
    sync()
    warmup_seconds = time.perf_counter() - began
    began = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    seconds = time.perf_counter() - began
    flops = forward_flops(model, x[:1]) * batch_size * (3 if mode == "train" else 1)
    peak = matmul_peak(torch_device)
    achieved = steps * flops / seconds / 1e9
    return {
        "mode": mode, "model": model.name, "input_samples": model.input_samples, "batch_size": batch_size,
        "precision": precision, "device": str(torch_device), "threads": torch.get_num_threads(), "steps": steps,
        "warmup_seconds": round(warmup_seconds, 3), "seconds": round(seconds, 3),
        "seconds_per_step": round(seconds / steps, 4), "segments_per_second": round(steps * batch_size / seconds, 2),
        "gflop_per_step": round(flops / 1e9, 3), "achieved_gflops": round(achieved, 1),
        "matmul_peak_gflops": peak,
        "fraction_of_peak": round(achieved / peak["bf16" if precision == "bf16" else "fp32"], 3),
        "allocator": allocator_state(),
        **({"backend": backend} if mode == "infer" else {}),
    }


def _train_step(model, runtime: Runtime, x, labels, task: str):
    """One optimizer step, exactly as `samplecnn train` runs it (training.steps.train_step)."""
    import torch

    from samplecnn_cli.core.runtime import task_loss
    from samplecnn_cli.training.steps import train_step

    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    loss_of, precision = task_loss(task), runtime.step_precision()
    return lambda: train_step(model, optimizer, precision, loss_of, (x, labels))


def _infer_step(model, runtime: Runtime, x, task: str, cache):
    """One batch through the inference core, as evaluate/tag/embed/extract run it (folded BN, the
    fastest backend measured here): the batch is one clip of `batch` windows."""
    from samplecnn_cli.inference.predictor import Predictor, array_clips

    predictor = Predictor.for_model(model, runtime, task=task, batch_size=x.shape[0], cache=cache)
    audio = x.numpy().reshape(-1)

    def step():
        for _ in predictor.run(array_clips([audio])):
            pass

    return step, predictor.choice.precision, predictor.choice.backend


def forward_flops(model, x) -> float:
    """Multiply-adds x 2 of the convolutions and dense layers in one forward pass of `x`.

    A training step is counted as 3 forward passes (forward, gradients of inputs and of weights),
    the usual estimate; batch norm, pooling and activations are not counted (they are memory-bound)."""
    import torch

    total = [0.0]

    def count(layer, inputs, output):
        if isinstance(layer, torch.nn.Conv1d):
            total[0] += 2.0 * output.numel() * layer.in_channels // layer.groups * layer.kernel_size[0]
        elif isinstance(layer, torch.nn.Linear):
            total[0] += 2.0 * output.numel() * layer.in_features

    handles = [m.register_forward_hook(count) for m in model.modules()
               if isinstance(m, (torch.nn.Conv1d, torch.nn.Linear))]
    was_training = model.training
    model.eval()
    with torch.no_grad():
        model(x.to(next(model.parameters()).device))
    model.train(was_training)
    for handle in handles:
        handle.remove()
    return total[0]


def matmul_peak(device, size: int = 1024, seconds: float = 0.3) -> dict:
    """This machine's measured matrix-multiply rate (GFLOP/s) in fp32 and bf16: the practical limit
    a convolutional network's step is compared to."""
    import time

    import torch

    out = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        a = torch.randn(size, size, device=device, dtype=dtype)
        b = torch.randn(size, size, device=device, dtype=dtype)
        torch.mm(a, b)
        runs, began = 0, time.perf_counter()
        while time.perf_counter() - began < seconds:
            torch.mm(a, b)
            runs += 1
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        out[name] = round(2.0 * size ** 3 * runs / (time.perf_counter() - began) / 1e9, 1)
    return out


def plain_rate(mode: str, model_name: str, batch_size: int, steps: int, num_outputs: int = 50, seed: int = 0) -> float:
    """Segments/s of the plain baseline: the fp32 eager model, no autocast, no folding; SGD for "train",
    torch.no_grad + sigmoid for "infer" - what a plain PyTorch script runs."""
    import torch

    from samplecnn_cli.models.registry import create_model

    torch.manual_seed(seed)
    model = create_model(model_name, num_outputs=num_outputs)
    x = torch.randn(batch_size, model.input_samples) * 0.1
    labels = torch.zeros(batch_size, num_outputs)
    labels[:, 0] = 1.0
    if mode == "train":
        optimizer = torch.optim.SGD(model.train().parameters(), lr=0.01, momentum=0.9, nesterov=True)
        loss_fn = torch.nn.BCEWithLogitsLoss()

        def step():
            optimizer.zero_grad()
            loss_fn(model(x), labels).backward()
            optimizer.step()
    else:
        model.eval()

        def step():
            with torch.no_grad():
                torch.sigmoid(model(x))
    step()
    began = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * batch_size / (time.perf_counter() - began)


def _plain_rate_in_plain_process(mode: str, model_name: str, batch_size: int, steps: int) -> float:
    """plain_rate in a fresh Python with the system allocator (memory.plain_environment): a user's script."""
    import json
    import subprocess
    import sys

    from samplecnn_cli.core.memory import plain_environment

    code = ("import json, sys; from samplecnn_cli.bench.throughput import plain_rate; "
            "print(json.dumps(plain_rate(*json.loads(sys.argv[1]))))")
    done = subprocess.run([sys.executable, "-c", code, json.dumps([mode, model_name, batch_size, steps])],
                          env=plain_environment(), capture_output=True, text=True, check=True)
    return float(done.stdout.strip().splitlines()[-1])


def bench_vs_plain(mode: str, model_name: str, runtime: Runtime, *, batch_size: int = 23, rounds: int = 3,
                   steps: int = 2, cache=None) -> dict:
    """Ours (bench()) against the plain fp32 eager model, interleaved round by round on the CPU; medians.

    The plain model is timed twice per round: in a fresh process with the system allocator (what a
    user's own script gets: the ratio the goals speak of) and in this process, which has memory.py's
    allocator settings (so the ratio without the allocator's share is visible too)."""
    import statistics

    import torch

    speeds: dict[str, list[float]] = {"plain": [], "plain_same_allocator": [], "ours": []}
    result: dict = {}
    for _ in range(rounds):
        speeds["plain"].append(_plain_rate_in_plain_process(mode, model_name, batch_size, steps))
        speeds["plain_same_allocator"].append(plain_rate(mode, model_name, batch_size, steps))
        result = bench(mode, model_name, runtime, batch_size=batch_size, steps=steps, cache=cache)
        speeds["ours"].append(result["segments_per_second"])
    median = {name: statistics.median(values) for name, values in speeds.items()}
    out = {"mode": mode, "model": result["model"], "batch_size": batch_size, "threads": torch.get_num_threads(),
           "cpu_capability": torch.backends.cpu.get_cpu_capability(), "precision": result["precision"],
           **({"backend": result["backend"]} if "backend" in result else {}),
           "allocator": result["allocator"],
           "plain_fp32_segments_per_second": round(median["plain"], 2),
           "plain_fp32_same_allocator_segments_per_second": round(median["plain_same_allocator"], 2),
           "ours_segments_per_second": round(median["ours"], 2),
           "speedup": round(median["ours"] / median["plain"], 2),
           "speedup_same_allocator": round(median["ours"] / median["plain_same_allocator"], 2),
           "achieved_gflops": result["achieved_gflops"], "matmul_peak_gflops": result["matmul_peak_gflops"],
           "fraction_of_peak": result["fraction_of_peak"],
           "all": {name: [round(v, 2) for v in values] for name, values in speeds.items()}}
    if mode == "infer":
        out["max_score_difference"] = max_score_difference(model_name, runtime, batch_size=batch_size, cache=cache)
    return out


def max_score_difference(model_name: str, runtime: Runtime, *, batch_size: int, num_outputs: int = 50,
                         seed: int = 0, cache=None) -> float:
    """Largest |sigmoid score| difference between the plain fp32 eager model and the inference path."""
    import torch

    from samplecnn_cli.inference.backend import choose
    from samplecnn_cli.models.registry import create_model

    torch.manual_seed(seed)
    model = create_model(model_name, num_outputs=num_outputs).eval()
    x = torch.randn(batch_size, model.input_samples) * 0.1
    fast, _ = choose(model, runtime, batch_size=batch_size, cache=cache)
    with torch.no_grad():
        return float((torch.sigmoid(model(x)) - torch.sigmoid(fast(x)[0])).abs().max())


def bench_data(store_dir, *, workers: tuple[int, ...] = (0, 1, 2), batch_size: int = 23, input_samples: int = 59049,
               batches: int = 100, split: str = "train") -> dict:
    """Segments per second the training loader delivers from `store_dir`, per worker count.

    The loader is the one `samplecnn train` uses (shuffled segments, folded batches); each worker count
    gets its own shuffle (epoch), so a later count does not just re-read what an earlier one cached."""
    from pathlib import Path

    from samplecnn_cli.core.errors import UsageError
    from samplecnn_cli.data.loader import SegmentDataset
    from samplecnn_cli.data.store import Store

    if batch_size < 1 or input_samples < 1 or batches < 1 or any(w < 0 for w in workers) or not workers:
        raise UsageError("--batch-size, --samples and --batches must be positive, --workers 0 or more")
    data = Store(Path(store_dir)).split(split)
    dataset = SegmentDataset(data, input_samples)
    results = [_loader_rate(dataset, w, batch_size, batches, epoch) for epoch, w in enumerate(workers, 1)]
    return {"mode": "data", "store": str(store_dir), "split": split, "segments": len(dataset),
            "store_bytes": int(data.path.stat().st_size), "input_samples": input_samples, "batch_size": batch_size,
            "direct_reads": dataset.audio.layout is not None, "results": results}


def _loader_rate(dataset, workers: int, batch_size: int, batches: int, epoch: int) -> dict:
    import time

    from samplecnn_cli.data.loader import segment_loader, set_epoch

    loader = segment_loader(dataset, batch_size=batch_size, shuffle=True, seed=epoch, workers=workers)
    set_epoch(loader, epoch)
    began = time.perf_counter()
    it = iter(loader)
    next(it)  # worker start-up is not throughput
    first = time.perf_counter()
    seen = done = 0
    for x, _, _ in it:
        seen, done = seen + x.shape[0], done + 1
        if done >= batches:
            break
    seconds = time.perf_counter() - first
    del it, loader
    return {"workers": workers, "batches": done, "segments": seen, "seconds": round(seconds, 3),
            "startup_seconds": round(first - began, 3), "segments_per_second": round(seen / max(seconds, 1e-9), 1),
            "mb_per_second": round(seen * dataset.input_samples * 2 / max(seconds, 1e-9) / 1e6, 1)}
