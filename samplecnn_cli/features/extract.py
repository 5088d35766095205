"""Multi-level, multi-scale song-level features (Section 4.1): slide trained models over whole clips.

For every clip of every split, each run's model sees all non-overlapping segments of the clip
(a clip shorter than one segment is zero-padded to one); each chosen hidden layer
(-3, -2, -1; each (segments, C, T)) is max-pooled and average-pooled over all segments and all time
steps, giving 2 x C numbers per (run, layer). Several runs with different input sizes give
multi-scale features. Rows are written block by block to a temporary file renamed at the end, so
memory stays flat in the number of clips. The file layout is described in data/features_file.py.

Clips are read in blocks (grouped until their segments fill a batch) and each run's model goes over a
block through the inference core (inference/predictor.py: segments of several clips share a batch, batch
norm folded, the fastest backend measured for the runtime's precision; reducers.LayerPools keeps each
clip's running max and sum).
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
from samplecnn_cli.core.errors import DataError, RunError, UsageError
from samplecnn_cli.core.locks import hold
from samplecnn_cli.core.outputs import remove_stale_temporaries, write_failure
from samplecnn_cli.core.runtime import Runtime
from samplecnn_cli.data.features_file import FORMAT, FORMAT_VERSION, LAYERS, POOLINGS, Block, blocks_to_json
from samplecnn_cli.data.h5write import H5Writer
from samplecnn_cli.data.store import Store, StoreSplit
from samplecnn_cli.inference.predictor import Predictor, store_clips
from samplecnn_cli.inference.reducers import LayerPools

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
    from samplecnn_cli.runs.folder import load_run

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


def pool_clips(predictor: Predictor, split: StoreSplit, clips: list[int],
               layers: tuple[int, ...]) -> dict[int, dict[str, np.ndarray]]:
    """Max and average of each layer over all segments and time steps of each clip, through the
    inference core. Returns {layer: {"max": (clips, C), "avg": (clips, C)}} as float32."""
    rows = [r.features for r in predictor.run(store_clips(split, clips), [LayerPools(layers)])]
    return {layer: {pooling: np.stack([row[layer][pooling] for row in rows]) for pooling in ("max", "avg")}
            for layer in layers}


def extract_features(run_dirs: list[Path], data_dir: Path, out: Path, runtime: Runtime | None = None, *,
                     layers: tuple[int, ...] | None = None, poolings: tuple[str, ...] | None = None,
                     splits: tuple[str, ...] | None = None, batch_size: int = 32, cache: Path | None = None,
                     on_progress: Callable[[str, int, int], None] | None = None) -> dict:
    """Write the features of every clip of the chosen splits of `data_dir` to `out` on `runtime`
    (default: the CPU in fp32); return a summary."""
    import torch

    runtime = runtime or Runtime.cpu()
    precision = runtime.precision
    layers = tuple(sorted(layers or LAYERS))
    poolings = tuple(p for p in POOLINGS if p in (poolings or POOLINGS))
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
    predictors = [Predictor.for_model(run.model, runtime, task=store.task, batch_size=batch_size, cache=cache)
                  for run in runs]
    smallest = min(run.model.input_samples for run in runs)

    started = time.perf_counter()
    attrs = dict(format=FORMAT, format_version=FORMAT_VERSION, label_names=_json(store.label_names),
                 task=store.task, sample_rate=store.sample_rate, data=str(Path(data_dir).resolve()),
                 dataset=store.dataset, splits=_json(list(split_names)), precision=precision,
                 layers=_json(list(layers)), poolings=_json(list(poolings)), samplecnn_version=__version__)
    with hold(out, str(out)):
        remove_stale_temporaries(out)  # of a run killed outright
        counts = _write_file(out, attrs, blocks, lambda writer: {
            name: _write_split(writer, name, store.split(name), predictors, keys, blocks, width, layers, smallest,
                               batch_size, on_progress) for name in split_names})
    return {
        "out": str(out), "data": str(data_dir), "splits": counts, "columns": width,
        "runs": [{"run": k, "run_dir": str(r.run_dir), "model": r.model_name, "input_samples": r.model.input_samples}
                 for k, r in zip(keys, runs, strict=True)],
        "layers": list(layers), "poolings": list(poolings), "precision": precision, "device": str(runtime.device),
        "backends": [f"{p.choice.backend}/{p.choice.precision}" for p in predictors],
        "seconds": round(time.perf_counter() - started, 3), "threads": torch.get_num_threads(),
    }


def _write_file(out: Path, attrs: dict, blocks: list[Block], write_splits) -> dict:
    """The feature file: written at a temporary name through data/h5write.py (space reserved before each
    write: a full disk is one clean error) and renamed over `out` when whole; `write_splits(writer)`
    writes the splits and returns their clip counts."""
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    writer = H5Writer(tmp, out)
    try:
        writer.reserve(0)
        with writer.writing() as f:
            f.attrs.update(attrs)
            f.create_dataset("blocks", data=blocks_to_json(blocks), dtype=h5py.string_dtype())
        counts = write_splits(writer)
        writer.close()
        os.replace(tmp, out)
    except BaseException as exc:
        writer.discard()
        failure = write_failure(exc, out) if isinstance(exc, OSError) else None
        if failure is not None:
            raise failure from None
        raise
    return counts


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


def _write_split(writer: H5Writer, name: str, split: StoreSplit, predictors, keys, blocks: list[Block], width: int,
                 layers: tuple[int, ...], smallest: int, batch_size: int, on_progress) -> int:
    n = len(split)
    writer.reserve(split.labels.nbytes + sum(len(c) + 16 for c in split.clip_ids))
    with writer.writing() as f:
        group = f.create_group(name)
        features = group.create_dataset("features", shape=(n, width), dtype=np.float32,
                                        chunks=(max(1, min(n, ROW_CHUNK)), width) if n else None)
        group.create_dataset("labels", data=split.labels, dtype=bool)
        group.create_dataset("clip_ids", data=np.array(split.clip_ids, dtype=object), dtype=h5py.string_dtype())
    by_run = {key: [b for b in blocks if b.run == key] for key in keys}
    done = 0
    for clips in clip_blocks(split, smallest, batch_size):
        rows = np.empty((len(clips), width), np.float32)
        for predictor, key in zip(predictors, keys, strict=True):
            pooled = pool_clips(predictor, split, clips, layers)
            for block in by_run[key]:
                rows[:, block.start:block.stop] = pooled[block.layer][block.pooling]
        writer.reserve(rows.nbytes)
        with writer.writing():
            features[clips[0]:clips[-1] + 1] = rows
        done += len(clips)
        if on_progress:
            on_progress(name, done, n)
    split.close()
    return n


def _json(value) -> str:
    return json.dumps(value)
