"""The embedding file written by `samplecnn embed` (documented in docs/inference.md).

One HDF5 file, attrs format="samplecnn-embeddings", format_version=1:
    /paths              str     (N,)        absolute path of each file, row order = input order
    /seconds            float64 (N,)        decoded duration at the model's rate
    /windows            int64   (N,)        windows the model saw (>= 1)
    /short              bool    (N,)        shorter than one window (zero-padded to one)
    /embedding          float32 (N, 512)    mean over windows of the 512-d embedding (the 1x1 conv
                                            layer averaged over time): the file-level embedding
    /features           float32 (N, F)      multi-level features: per layer in `layers` (-3, -2, -1),
                                            per pooling ("max", "avg") over all windows and time,
                                            the block table /feature_blocks says which columns
    /feature_blocks     str (JSON)          [{layer, pooling, channels, start, stop}, ...]
    /window_embedding   float32 (W, 512)    only with a hop: every window's embedding; the rows of
    /window_offsets     int64   (N + 1,)    file i are window_offsets[i]:window_offsets[i + 1]
    /failed_paths, /failed_reasons  str (K,)  files that could not be decoded
    attrs: run, model, input_samples, sample_rate (the model's; audio is resampled to it),
           hop_seconds, window_seconds, layers (JSON), poolings (JSON), backend, precision,
           label_names (JSON), samplecnn_version
Datasets grow as files finish, in a temporary file renamed over `out` at the end.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import h5py
import numpy as np

FORMAT = "samplecnn-embeddings"
FORMAT_VERSION = 1
POOLINGS = ("max", "avg")


class EmbeddingWriter:
    def __init__(self, out: Path, *, attrs: dict, layer_channels: dict[int, int], windows: bool,
                 embedding_size: int = 512):
        self.out = Path(out)
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.out.with_name(f".{self.out.name}.tmp{os.getpid()}")
        self.f = h5py.File(self.tmp, "w")
        self.f.attrs.update(format=FORMAT, format_version=FORMAT_VERSION, **attrs)
        self.blocks, start = [], 0
        for layer, channels in layer_channels.items():
            for pooling in POOLINGS:
                self.blocks.append({"layer": layer, "pooling": pooling, "channels": channels, "start": start,
                                    "stop": start + channels})
                start += channels
        self.width = start
        text = h5py.string_dtype()
        self.f.create_dataset("feature_blocks", data=json.dumps(self.blocks), dtype=text)
        grow = {"maxshape": (None,), "chunks": (256,)}
        self.paths = self.f.create_dataset("paths", (0,), dtype=text, **grow)
        self.seconds = self.f.create_dataset("seconds", (0,), dtype=np.float64, **grow)
        self.windows = self.f.create_dataset("windows", (0,), dtype=np.int64, **grow)
        self.short = self.f.create_dataset("short", (0,), dtype=bool, **grow)
        self.embedding = self.f.create_dataset("embedding", (0, embedding_size), dtype=np.float32,
                                               maxshape=(None, embedding_size), chunks=(64, embedding_size))
        self.features = None
        if self.width:
            self.features = self.f.create_dataset("features", (0, self.width), dtype=np.float32,
                                                  maxshape=(None, self.width), chunks=(64, self.width))
        self.window_embedding = self.offsets = None
        if windows:
            self.window_embedding = self.f.create_dataset("window_embedding", (0, embedding_size), dtype=np.float32,
                                                          maxshape=(None, embedding_size), chunks=(256, embedding_size))
            self.offsets = [0]
        self.failed: list[tuple[str, str]] = []
        self.rows = 0

    @staticmethod
    def _append(dataset, values) -> None:
        n = dataset.shape[0]
        dataset.resize(n + len(values), axis=0)
        dataset[n:] = values

    def add(self, r) -> None:
        path = str(Path(r.path).resolve())
        if r.error is not None:
            self.failed.append((path, r.error))
            return
        self._append(self.paths, [path])
        self._append(self.seconds, [r.seconds])
        self._append(self.windows, [r.windows])
        self._append(self.short, [r.short])
        self._append(self.embedding, r.embedding[None])
        if self.features is not None:
            row = np.concatenate([r.features[b["layer"]][b["pooling"]] for b in self.blocks])
            self._append(self.features, row[None])
        if self.window_embedding is not None:
            self._append(self.window_embedding, r.window_embeddings)
            self.offsets.append(self.offsets[-1] + len(r.window_embeddings))
        self.rows += 1

    def finish(self) -> None:
        text = h5py.string_dtype()
        if self.offsets is not None:
            self.f.create_dataset("window_offsets", data=np.asarray(self.offsets, np.int64))
        self.f.create_dataset("failed_paths", data=np.array([p for p, _ in self.failed], dtype=object), dtype=text)
        self.f.create_dataset("failed_reasons", data=np.array([e for _, e in self.failed], dtype=object), dtype=text)
        self.f.close()
        os.replace(self.tmp, self.out)

    def abort(self) -> None:
        try:
            self.f.close()
        finally:
            self.tmp.unlink(missing_ok=True)
