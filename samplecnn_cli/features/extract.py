"""Multi-level, multi-scale song-level features (Section 4.1): slide trained models over whole clips.

For every clip of every split, each run's model sees all non-overlapping segments of the clip
(data/segments: a clip shorter than one segment is zero-padded to one); each chosen hidden layer
(-3, -2, -1; each (segments, C, T)) is max-pooled and average-pooled over all segments and all time
steps, giving 2 x C numbers per (run, layer). Several runs with different input sizes give
multi-scale features. Rows are written block by block to a temporary file renamed at the end, so
memory stays flat in the number of clips. The file layout is described in features/file.py.

Segments of several clips are batched together: clips are grouped until their segments fill a
batch, the model runs batch by batch, and per-clip running max and sum are scattered back. The model
runs through samplecnn_cli.inference (batch norm folded, fastest backend measured for the precision).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import h5py
import numpy as np

from samplecnn_cli import __version__
from samplecnn_cli.data.segments import segments_of
from samplecnn_cli.data.store import Store, StoreSplit
from samplecnn_cli.errors import DataError, RunError, UsageError
from samplecnn_cli.features.file import FORMAT, FORMAT_VERSION, LAYERS, POOLINGS, Block, blocks_to_json

PRECISIONS = ("fp32", "bf16")
ROW_CHUNK = 256  # clips per HDF5 chunk of the feature matrix


def _run_keys(run_dirs: list[Path]) -> list[str]:
    """Short unique names for the runs: the folder name, with -2, -3 ... on clashes."""
    keys: list[str] = []
    for run_dir in run_dirs:
        base = Path(run_dir).resolve().name or "run"
        key, n = base, 2
        while key in keys:
            key, n = f"{base}-{n}", n + 1
        keys.append(key)
    return keys


def load_extractors(run_dirs: list[Path], sample_rate: int, data_dir: Path) -> list:
    """Load each run (model in eval mode) and check it was trained on audio at the store's rate."""
    from samplecnn_cli.runs import load_run

    if not run_dirs:
        raise UsageError("give at least one run directory to extract features with")
    loaded = []
    for run_dir in run_dirs:
        run = load_run(Path(run_dir))
        if run.kind == "transfer" or not hasattr(run.model, "forward_all"):
            raise RunError(f"{run_dir} is a transfer run: features come from waveform models",
                           hint="pass run directories written by `samplecnn train`")
        rate = int(run.sample_rate or run.model.sample_rate)
        if rate != sample_rate:
            raise DataError(f"sample-rate mismatch: run {run_dir} ({run.model_name}) expects {rate} Hz audio, "
                            f"store {data_dir} is {sample_rate} Hz",
                            hint=f"preprocess the target data at {rate} Hz (samplecnn preprocess ... --sr {rate})")
        loaded.append(run)
    return loaded


def plan_blocks(runs: list, keys: list[str], layers: tuple[int, ...], poolings: tuple[str, ...]) -> list[Block]:
    """The column layout: per run, per layer (-3..-1 order), per pooling; channels from a dummy pass."""
    import torch

    blocks, start = [], 0
    for run, key in zip(runs, keys, strict=True):
        model = run.model
        with torch.no_grad():
            hidden = model.forward_all(torch.zeros(1, model.input_samples)).hidden
        for layer in layers:
            channels = int(hidden[layer].shape[1])
            for pooling in poolings:
                blocks.append(Block(run=key, run_dir=str(Path(run.run_dir).resolve()), model=run.model_name,
                                    input_samples=int(model.input_samples), sample_rate=int(model.sample_rate),
                                    layer=int(layer), pooling=pooling, channels=channels,
                                    start=start, stop=start + channels))
                start += channels
    return blocks


def clip_blocks(split: StoreSplit, segment_samples: int, batch_size: int) -> Iterator[list[int]]:
    """Consecutive clip indices grouped until their segments (of the smallest model) fill a batch."""
    block, segments = [], 0
    for index, length in enumerate(split.clip_lengths):
        block.append(index)
        segments += max(1, int(length) // segment_samples)
        if segments >= batch_size:
            yield block
            block, segments = [], 0
    if block:
        yield block


def pool_clips(fast, audios: list[np.ndarray], layers: tuple[int, ...], batch_size: int) -> dict[int, dict[str, np.ndarray]]:
    """Max and average of each layer over all segments and time steps of each clip, with `fast` an
    inference.backend.FastModel (or anything returning (logits, hidden) for a batch).

    Returns {layer: {"max": (clips, C), "avg": (clips, C)}} as float32.
    """
    import torch

    segments = [segments_of(audio, fast.input_samples) for audio in audios]
    owner = torch.as_tensor(np.repeat(np.arange(len(audios)), [len(s) for s in segments]))
    stacked = torch.from_numpy(np.concatenate(segments, axis=0))
    maxima: dict[int, torch.Tensor] = {}
    sums: dict[int, torch.Tensor] = {}
    steps: dict[int, torch.Tensor] = {}
    with torch.inference_mode():
        for begin in range(0, stacked.shape[0], batch_size):
            idx = owner[begin:begin + batch_size]
            hidden = fast(stacked[begin:begin + batch_size])[1]
            for layer in layers:
                h = hidden[layer].float()  # (B, C, T)
                if layer not in maxima:
                    channels = h.shape[1]
                    maxima[layer] = torch.full((len(audios), channels), -torch.inf)
                    sums[layer] = torch.zeros(len(audios), channels, dtype=torch.float64)
                    steps[layer] = torch.zeros(len(audios), dtype=torch.float64)
                seg_max = h.amax(dim=-1)
                maxima[layer].scatter_reduce_(0, idx[:, None].expand_as(seg_max), seg_max, "amax")
                sums[layer].index_add_(0, idx, h.sum(dim=-1).double())
                steps[layer].index_add_(0, idx, torch.full((len(idx),), float(h.shape[-1]), dtype=torch.float64))
    return {layer: {"max": maxima[layer].numpy().astype(np.float32),
                    "avg": (sums[layer] / steps[layer][:, None]).numpy().astype(np.float32)}
            for layer in layers}


def extract_features(run_dirs: list[Path], data_dir: Path, out: Path, *,
                     layers: tuple[int, ...] | None = None, poolings: tuple[str, ...] | None = None,
                     splits: tuple[str, ...] | None = None, batch_size: int = 32, precision: str = "fp32",
                     device: str = "cpu", on_progress: Callable[[str, int, int], None] | None = None) -> dict:
    """Write the features of every clip of the chosen splits of `data_dir` to `out`; return a summary."""
    import torch

    layers = tuple(sorted(layers or LAYERS))
    poolings = tuple(p for p in POOLINGS if p in (poolings or POOLINGS))
    if precision not in PRECISIONS:
        raise UsageError(f"--precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    if batch_size < 1:
        raise UsageError("--batch-size must be at least 1")
    out = _output_file(Path(out))
    store = Store(Path(data_dir))
    split_names = tuple(splits or store.splits)
    for name in split_names:
        store.split(name)  # a clear error for a split the store lacks
    runs = load_extractors(list(run_dirs), store.sample_rate, Path(data_dir))
    keys = _run_keys([Path(d) for d in run_dirs])
    blocks = plan_blocks(runs, keys, layers, poolings)
    width = blocks[-1].stop
    from samplecnn_cli.inference.backend import choose
    from samplecnn_cli.training.device import resolve_device

    torch_device = resolve_device(device)
    fast_models = [choose(run.model, precision=precision, device=torch_device, batch_size=batch_size)[0]
                   for run in runs]
    smallest = min(run.model.input_samples for run in runs)

    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    started = time.perf_counter()
    counts = {}
    try:
        with h5py.File(tmp, "w") as f:
            f.attrs.update(format=FORMAT, format_version=FORMAT_VERSION, label_names=_json(store.label_names),
                           task=store.task, sample_rate=store.sample_rate, data=str(Path(data_dir).resolve()),
                           dataset=store.dataset, splits=_json(list(split_names)), precision=precision,
                           layers=_json(list(layers)), poolings=_json(list(poolings)),
                           samplecnn_version=__version__)
            f.create_dataset("blocks", data=blocks_to_json(blocks), dtype=h5py.string_dtype())
            for name in split_names:
                split = store.split(name)
                counts[name] = _write_split(f, name, split, fast_models, keys, blocks, width, layers, smallest, batch_size,
                                            precision, on_progress)
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return {
        "out": str(out), "data": str(data_dir), "splits": counts, "columns": width,
        "runs": [{"run": k, "run_dir": str(r.run_dir), "model": r.model_name, "input_samples": r.model.input_samples}
                 for k, r in zip(keys, runs, strict=True)],
        "layers": list(layers), "poolings": list(poolings), "precision": precision, "device": str(torch_device),
        "backends": [f"{m.backend}/{m.precision}" for m in fast_models],
        "seconds": round(time.perf_counter() - started, 3), "threads": torch.get_num_threads(),
    }


def _output_file(out: Path) -> Path:
    """`out`, checked (not a folder) and with its folder made, before any work is done."""
    if out.is_dir():
        raise UsageError(f"--out {out} is a folder", hint="name the feature file, e.g. --out features.h5")
    try:
        out.resolve()  # a symlink loop fails here
        out.parent.mkdir(parents=True, exist_ok=True)
    except (OSError, RuntimeError) as exc:
        raise DataError(f"cannot write --out {out}: {exc}") from None
    return out


def _write_split(f: h5py.File, name: str, split: StoreSplit, fast_models, keys, blocks: list[Block], width: int,
                 layers: tuple[int, ...], smallest: int, batch_size: int, precision: str, on_progress) -> int:
    n = len(split)
    group = f.create_group(name)
    features = group.create_dataset("features", shape=(n, width), dtype=np.float32,
                                    chunks=(max(1, min(n, ROW_CHUNK)), width) if n else None)
    group.create_dataset("labels", data=split.labels, dtype=bool)
    group.create_dataset("clip_ids", data=np.array(split.clip_ids, dtype=object), dtype=h5py.string_dtype())
    by_run = {key: [b for b in blocks if b.run == key] for key in keys}
    done = 0
    for clips in clip_blocks(split, smallest, batch_size):
        audios = [split.read_float(i) for i in clips]
        rows = np.empty((len(clips), width), np.float32)
        for fast, key in zip(fast_models, keys, strict=True):
            pooled = pool_clips(fast, audios, layers, batch_size)
            for block in by_run[key]:
                rows[:, block.start:block.stop] = pooled[block.layer][block.pooling]
        features[clips[0]:clips[-1] + 1] = rows
        done += len(clips)
        if on_progress:
            on_progress(name, done, n)
    split.close()
    return n


def _json(value) -> str:
    return json.dumps(value)
