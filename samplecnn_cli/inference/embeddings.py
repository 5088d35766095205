"""The embedding file written by `samplecnn embed` (documented in docs/inference.md).

One HDF5 file, attrs format="samplecnn-embeddings", format_version=1:
    /paths              str     (N,)        absolute path of each file, in the order they were embedded
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
           label_names (JSON), samplecnn_version, complete (True once every file is in)

Resuming like `tag`: rows grow in `.<name>.partial` beside `out` (flushed every few seconds, closed
cleanly on an error, Ctrl-C or SIGTERM), renamed over `out` when every file is in. A rerun of the same
command continues the partial file, or adds to a complete `out` of the same settings, skipping the
files already there (failed ones included, as `tag` does).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import h5py
import numpy as np

from samplecnn_cli.core.errors import UsageError
from samplecnn_cli.core.outputs import write_failure
from samplecnn_cli.data.h5write import H5Writer

FORMAT = "samplecnn-embeddings"
FORMAT_VERSION = 1
POOLINGS = ("max", "avg")
# what must agree for a file to be continued (backend and versions may differ between runs)
SETTINGS = ("run", "model", "input_samples", "sample_rate", "hop_seconds", "layers", "poolings", "precision",
            "label_names")
DATASETS = ("paths", "seconds", "windows", "short", "embedding", "features", "window_embedding", "window_offsets",
            "failed_paths", "failed_reasons")
FLUSH_SECONDS = 2.0  # at most this much work is lost when the process is killed outright
TEXT = h5py.string_dtype()


def feature_blocks(layer_channels: dict[int, int]) -> list[dict]:
    blocks, start = [], 0
    for layer, channels in layer_channels.items():
        for pooling in POOLINGS:
            blocks.append({"layer": layer, "pooling": pooling, "channels": channels, "start": start,
                           "stop": start + channels})
            start += channels
    return blocks


class EmbeddingWriter:
    """Rows of `out`, written into its partial file; `done` holds the paths already there."""

    def __init__(self, out: Path, *, attrs: dict, layer_channels: dict[int, int], windows: bool,
                 embedding_size: int = 512, replace: bool = False):
        self.out = Path(out)
        self.partial = self.out.with_name(f".{self.out.name}.partial")
        self.blocks = feature_blocks(layer_channels)
        self.width = self.blocks[-1]["stop"] if self.blocks else 0
        self.settings = {**attrs, "feature_blocks": json.dumps(self.blocks), "windows": bool(windows)}
        self.embedding_size = embedding_size
        self.added = 0  # rows added by this process
        self._flushed = time.monotonic()
        self._open(replace)

    # -- where to start from --------------------------------------------------------------------
    def _open(self, replace: bool) -> None:
        """Continue the partial file, or start from a complete `out` of these settings (copied on the
        first row added, so a rerun with nothing new leaves `out` untouched), or from nothing."""
        self.h5, self.base = None, None
        try:
            self.out.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise write_failure(exc, self.out) or exc from None
        if not replace and self._continue(self.partial):
            return
        self.partial.unlink(missing_ok=True)
        if not replace and self.out.is_file() and self._matches(self.out):
            self.base = self.out

    def _start(self) -> None:
        """Open the partial file for the first row this process adds."""
        if self.h5 is not None:
            return
        if self.base is not None:
            try:
                shutil.copyfile(self.base, self.partial)
            except OSError as exc:
                self.partial.unlink(missing_ok=True)
                raise write_failure(exc, self.out) or exc from None
            if self._continue(self.partial):
                return
        self._create()

    def _matches(self, path: Path) -> bool:
        """True when `path` holds rows of these very settings, in datasets that can grow (UsageError for
        a complete `out` of other settings)."""
        keys = (*SETTINGS, "feature_blocks", "windows")
        try:
            with h5py.File(path, "r") as f:
                have = {k: _plain(f.attrs.get(k)) for k in SETTINGS}
                have["feature_blocks"] = _plain(f["feature_blocks"][()]) if "feature_blocks" in f else None
                have["windows"] = "window_embedding" in f
                growable = f["paths"].maxshape == (None,) and f["failed_paths"].maxshape == (None,)
        except (OSError, KeyError, ValueError):
            return False
        differ = [k for k in keys if have[k] != _plain(self.settings.get(k))]
        if differ and path == self.out:
            raise UsageError(f"{self.out} holds embeddings of other settings ({', '.join(differ)})",
                             hint="write to a new --out, or pass --force to replace it")
        return not differ and growable

    def _continue(self, path: Path) -> bool:
        """Open the partial file at `path` to add to it; False (nothing opened) when it cannot be used."""
        if not path.is_file() or not self._matches(path):
            return False
        try:
            self.h5 = H5Writer(path, self.out, mode="r+")
        except (OSError, ValueError):
            return False
        self._bind()
        self._cut_to_whole_rows()
        return True

    def _create(self) -> None:
        h5 = H5Writer(self.partial, self.out)
        try:
            self._layout(h5)
        except BaseException:
            h5.discard()
            raise
        self.h5 = h5
        self._bind()

    def _layout(self, h5: H5Writer) -> None:
        """The attributes and the (empty, growable) datasets of a new file."""
        f, grow, size = h5.file, {"maxshape": (None,), "chunks": (256,)}, self.embedding_size
        h5.reserve(0)
        with h5.writing():
            f.attrs.update(format=FORMAT, format_version=FORMAT_VERSION, complete=False,
                           **{k: v for k, v in self.settings.items() if k not in ("feature_blocks", "windows")})
            f.create_dataset("feature_blocks", data=self.settings["feature_blocks"], dtype=TEXT)
            for name, dtype in (("paths", TEXT), ("seconds", np.float64), ("windows", np.int64), ("short", bool),
                                ("failed_paths", TEXT), ("failed_reasons", TEXT)):
                f.create_dataset(name, (0,), dtype=dtype, **grow)
            f.create_dataset("embedding", (0, size), dtype=np.float32, maxshape=(None, size), chunks=(64, size))
            if self.width:
                f.create_dataset("features", (0, self.width), dtype=np.float32, maxshape=(None, self.width),
                                 chunks=(64, self.width))
            if self.settings["windows"]:
                f.create_dataset("window_embedding", (0, size), dtype=np.float32, maxshape=(None, size),
                                 chunks=(256, size))
                f.create_dataset("window_offsets", data=np.zeros(1, np.int64), maxshape=(None,), chunks=(256,))

    def _bind(self) -> None:
        """Every dataset held open while writing: a handle opened per write would flush its chunks when
        the garbage collector closes it, where an error (a full disk) cannot be caught."""
        f = self.h5.file
        self.sets = {name: f[name] for name in DATASETS if name in f}
        self.paths, self.failed_paths = self.sets["paths"], self.sets["failed_paths"]
        self.features = self.sets.get("features")
        self.window_embedding = self.sets.get("window_embedding")

    def _cut_to_whole_rows(self) -> None:
        """A process killed outright may leave a row half-written: `paths` is written last, so its
        length counts the whole rows; the rest is cut back to it."""
        f, rows = self.sets, self.paths.shape[0]
        with self.h5.writing():
            for name in ("seconds", "windows", "short", "embedding", "features"):
                if name in f and f[name].shape[0] != rows:
                    f[name].resize(rows, axis=0)
            if self.window_embedding is not None:
                offsets = f["window_offsets"]
                offsets.resize(rows + 1, axis=0)
                self.window_embedding.resize(int(offsets[rows]), axis=0)
            f["failed_reasons"].resize(self.failed_paths.shape[0], axis=0)

    def _counts(self) -> tuple[set[str], int, int]:
        """(paths already in, rows, failed files) of the partial file, else of the complete `out`."""
        if self.h5 is not None and self.h5.file.id.valid:
            f = self.h5.file
        elif self.base is not None and self.base.is_file():
            f = h5py.File(self.base, "r")
        else:
            return set(), 0, 0
        try:
            paths, failed = [_plain(p) for p in f["paths"][:]], [_plain(p) for p in f["failed_paths"][:]]
        finally:
            if f is not getattr(self.h5, "file", None):
                f.close()
        return set(paths) | set(failed), len(paths), len(failed)

    @property
    def done(self) -> set[str]:
        return self._counts()[0]

    @property
    def rows(self) -> int:
        return self._counts()[1]

    @property
    def failed(self) -> int:
        return self._counts()[2]

    # -- writing ----------------------------------------------------------------------------------
    def add(self, r) -> None:
        self._start()
        path = str(Path(r.path).resolve())
        if r.error is not None:
            self._append_all([("failed_reasons", [r.error]), ("failed_paths", [path])])
        else:
            values = [("seconds", [r.seconds]), ("windows", [r.windows]), ("short", [r.short]),
                      ("embedding", r.embedding[None])]
            if self.features is not None:
                values.append(("features", np.concatenate([r.features[b["layer"]][b["pooling"]]
                                                           for b in self.blocks])[None]))
            if self.window_embedding is not None:
                with self.h5.writing():  # (an HDF5 error here too leaves the file alone)
                    end = int(self.sets["window_offsets"][-1]) + len(r.window_embeddings)
                values += [("window_embedding", r.window_embeddings), ("window_offsets", [end])]
            self._append_all([*values, ("paths", [path])])  # paths last: a row counts once it is whole
            self.added += 1
        if time.monotonic() - self._flushed > FLUSH_SECONDS:
            self.h5.flush()
            self._flushed = time.monotonic()

    def _append_all(self, values: list) -> None:
        nbytes = sum(np.asarray(v).nbytes if not isinstance(v[0], str) else sum(map(len, v)) for _, v in values)
        self.h5.reserve(nbytes)
        with self.h5.writing():
            for name, value in values:
                dataset = self.sets[name]
                n = dataset.shape[0]
                dataset.resize(n + len(value), axis=0)
                dataset[n:] = value

    def finish(self) -> None:
        """Every file is in: mark the file complete and rename it over `out` (nothing to do when no row
        was added to a complete `out`)."""
        if self.h5 is None and self.base is not None:
            return
        self._start()
        self.h5.reserve(0)
        with self.h5.writing():
            self.h5.file.attrs["complete"] = True
        self.h5.close()
        try:
            os.replace(self.partial, self.out)
        except OSError as exc:
            raise write_failure(exc, self.out) or exc from None
        self.base = self.out  # what the counts are read from now

    def pause(self) -> None:
        """Stop here, keeping the rows in the partial file for a rerun (an error or an interrupt); a
        partial file with nothing in it goes."""
        if self.h5 is None or self.h5.broken:
            return
        if not self.paths.shape[0] and not self.failed_paths.shape[0]:
            self.h5.discard()
            return
        self.h5.close(strict=False)
        self.base = self.partial


def _plain(value):
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    return value
