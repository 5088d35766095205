"""The preprocessed store: one HDF5 file per split (train.h5, valid.h5, test.h5) in a folder.

Layout of each file (format_version 1):
    audio      int16 (total_samples,)   every clip's samples, one after another, chunked
    offsets    int64 (num_clips + 1,)   clip i is audio[offsets[i]:offsets[i + 1]]
    labels     bool  (num_clips, num_labels)   multi-hot, or one-hot for single-label tasks
    clip_ids   str   (num_clips,)
    paths      str   (num_clips,)       source audio, relative to the dataset root
    attrs      format="samplecnn-store", format_version, sample_rate, clip_samples (0 = clips vary),
               label_names (JSON list), task ("multilabel" | "multiclass"), dataset, split,
               preprocess (JSON of the settings), samplecnn_version, num_clips
One flat int16 array with offsets keeps clips of any length and makes a random segment one
contiguous read.

Writer side (owned by preprocessing): `samplecnn preprocess` first writes part files
`OUT/.parts/<fingerprint>/chunk-NNNNNN.h5` in this same layout (one per chunk of consecutive clips
of one split, written atomically), with two extra attrs: `chunk` (int) and `failed` (JSON list of
{path, reason}). When every chunk is there, `merge_parts` concatenates them, in chunk order, into
`OUT/<split>.h5`, and the parts folder is removed. The reader never sees part files.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np

from samplecnn_cli import __version__
from samplecnn_cli.core.errors import DataError
from samplecnn_cli.core.outputs import write_failure
from samplecnn_cli.data.h5write import H5Writer

FORMAT = "samplecnn-store"
FORMAT_VERSION = 1
SPLITS = ("train", "valid", "test")
TASKS = ("multilabel", "multiclass")
AUDIO_CHUNK = 1 << 16  # samples per HDF5 chunk: a few segments per read, small enough for random access
_STR = h5py.string_dtype()


class SplitWriter:
    """Append clips to a temporary file beside `path`; `close()` renames it to `path`, so a store file
    is whole or absent. The temporary name is unique per writer (`.<name>.<owner>-<pid>-<random>.tmp`,
    `owner` defaulting to the pid), so two writers of one path never share (and corrupt) one temporary
    file, and a process can find its workers' leftovers by `owner`. Writes go through data/h5write.py
    (space reserved first: a full disk is one clean error, never a crash)."""

    def __init__(self, path: Path, *, sample_rate: int, label_names: list[str], task: str,
                 dataset: str, split: str, clip_samples: int = 0, preprocess: dict | None = None,
                 extra_attrs: dict | None = None, owner: str | None = None):
        if task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, not {task!r}")
        self.path = Path(path)
        tag = f"{owner}-{os.getpid()}" if owner else str(os.getpid())
        self.tmp_path = self.path.with_name(f".{self.path.name}.{tag}-{secrets.token_hex(4)}.tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise write_failure(exc, self.path) or exc from None
        self.num_labels = len(label_names)
        self._h5 = H5Writer(self.tmp_path, self.path)
        self._file = f = self._h5.file
        self._h5.reserve(0)
        with self._h5.writing():
            f.create_dataset("audio", shape=(0,), maxshape=(None,), dtype=np.int16, chunks=(AUDIO_CHUNK,))
            f.create_dataset("offsets", data=np.zeros(1, np.int64), maxshape=(None,), chunks=(4096,))
            f.create_dataset("labels", shape=(0, self.num_labels), maxshape=(None, self.num_labels),
                             dtype=bool, chunks=(1024, max(self.num_labels, 1)))
            f.create_dataset("clip_ids", shape=(0,), maxshape=(None,), dtype=_STR, chunks=(1024,))
            f.create_dataset("paths", shape=(0,), maxshape=(None,), dtype=_STR, chunks=(1024,))
            f.attrs.update(
                format=FORMAT, format_version=FORMAT_VERSION, sample_rate=int(sample_rate),
                clip_samples=int(clip_samples), label_names=json.dumps(list(label_names)), task=task,
                dataset=dataset, split=split, preprocess=json.dumps(preprocess or {}),
                samplecnn_version=__version__, num_clips=0,
            )
            if extra_attrs:
                f.attrs.update(extra_attrs)
        # every dataset held open while writing: a handle opened per write would flush its chunks when
        # closed by the garbage collector, where an error (a full disk) cannot be caught
        self._sets = {name: f[name] for name in ("audio", "offsets", "labels", "clip_ids", "paths")}
        self._audio_end = 0
        self.num_clips = 0
        self._clip_start = 0  # where the clip being streamed (append_audio) began

    @property
    def audio_end(self) -> int:
        return self._audio_end

    def append(self, clip_id: str, source: str, waveform: np.ndarray, labels: np.ndarray) -> None:
        waveform = np.asarray(waveform)
        if waveform.dtype != np.int16 or waveform.ndim != 1:
            raise ValueError("waveform must be a 1-D int16 array")
        self.append_audio(waveform)
        self.end_clip(clip_id, source, labels)

    def append_audio(self, samples: np.ndarray) -> None:
        """Add int16 samples to the clip being written (a long clip arrives in pieces: bounded memory)."""
        if not samples.shape[0]:
            return
        end = self._audio_end
        self._h5.reserve(samples.nbytes)
        with self._h5.writing():
            self._sets["audio"].resize((end + samples.shape[0],))
            self._sets["audio"][end:] = samples
        self._audio_end = end + samples.shape[0]

    def drop_clip(self) -> None:
        """Forget the samples of the clip being written (its file failed half way)."""
        self._audio_end = self._clip_start
        with self._h5.writing():
            self._sets["audio"].resize((self._audio_end,))

    def end_clip(self, clip_id: str, source: str, labels: np.ndarray) -> None:
        """Close the clip whose samples were appended since the last one."""
        labels = np.asarray(labels, dtype=bool).reshape(-1)
        if labels.shape[0] != self.num_labels:
            raise ValueError(f"expected {self.num_labels} labels, got {labels.shape[0]}")
        f, n = self._sets, self.num_clips
        self._h5.reserve(labels.nbytes + len(clip_id) + len(source) + 64)
        with self._h5.writing():
            f["offsets"].resize((n + 2,))
            f["offsets"][n + 1] = self._audio_end
            for name, value in (("labels", labels), ("clip_ids", clip_id), ("paths", source)):
                f[name].resize((n + 1, *f[name].shape[1:]))
                f[name][n] = value
        self.num_clips = n + 1
        self._clip_start = self._audio_end

    def extend(self, audio: np.ndarray, offsets: np.ndarray, labels: np.ndarray,
               clip_ids: list[str], paths: list[str]) -> None:
        """Append many clips at once: `audio` flat int16, `offsets` (n + 1,) starting at 0."""
        if len(offsets) <= 1:
            return
        base = self._audio_end
        self.append_audio(np.asarray(audio))
        self.extend_index(offsets, labels, clip_ids, paths, base)

    def extend_index(self, offsets: np.ndarray, labels: np.ndarray, clip_ids: list[str], paths: list[str],
                     base: int) -> None:
        """The index rows of clips whose samples were appended from `base` on (offsets start at 0)."""
        n_new = len(offsets) - 1
        f, n = self._sets, self.num_clips
        text = sum(len(c) + len(p) for c, p in zip(clip_ids, paths, strict=True))
        self._h5.reserve(9 * n_new + np.asarray(labels).nbytes + text)
        with self._h5.writing():
            f["offsets"].resize((n + n_new + 1,))
            f["offsets"][n + 1:] = np.asarray(offsets[1:], np.int64) + base
            for name, value in (("labels", np.asarray(labels, bool)), ("clip_ids", clip_ids), ("paths", paths)):
                f[name].resize((n + n_new, *f[name].shape[1:]))
                f[name][n:] = value
        self._clip_start = self._audio_end
        self.num_clips = n + n_new

    def set_attrs(self, **attrs) -> None:
        self._h5.reserve(sum(len(str(v)) for v in attrs.values()))
        with self._h5.writing():
            self._file.attrs.update(attrs)

    def close(self) -> Path:
        try:
            self._h5.reserve(0)
            with self._h5.writing():
                self._file.attrs["num_clips"] = self.num_clips
            self._h5.close()
            os.replace(self.tmp_path, self.path)
        except BaseException as exc:
            self._h5.discard()
            failure = write_failure(exc, self.path) if isinstance(exc, OSError) else None
            if failure is not None:
                raise failure from None
            raise
        return self.path

    def abort(self) -> None:
        self._h5.discard()

    def __enter__(self) -> SplitWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


COPY_BLOCK = 1 << 22  # samples per read when parts are merged: memory stays flat for clips of any length


def merge_parts(parts: list[Path], path: Path, **writer_kwargs) -> int:
    """Concatenate part files (same layout) into one split file at `path`, atomically. Returns clips."""
    with SplitWriter(path, **writer_kwargs) as writer:
        for part in parts:
            with h5py.File(part, "r") as f:
                if int(f.attrs.get("num_clips", len(f["offsets"]) - 1)) == 0:
                    continue
                base, audio = writer.audio_end, f["audio"]
                for begin in range(0, audio.shape[0], COPY_BLOCK):
                    writer.append_audio(audio[begin:begin + COPY_BLOCK])
                writer.extend_index(f["offsets"][:], f["labels"][:],
                                    [s.decode() if isinstance(s, bytes) else s for s in f["clip_ids"][:]],
                                    [s.decode() if isinstance(s, bytes) else s for s in f["paths"][:]], base)
        return writer.num_clips


def check_split(path: Path, *, num_clips: int | None = None, sample_rate: int | None = None) -> str | None:
    """What is wrong with the split file `path` (a short reason), or None when it looks whole.

    Cheap checks, no full read: it opens as HDF5, has the samplecnn attributes and datasets, its offsets
    start at 0, never decrease and end at the audio length, the per-clip datasets agree on the clip
    count, the per-clip datasets and the first and last audio samples can be read (a file cut short fails
    here), and the clip ids are neither empty nor repeated (a file whose tail was overwritten).
    `num_clips` and `sample_rate`, when given, must match too (what preprocess-report.json recorded).
    """
    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("format") != FORMAT:
                return "not a samplecnn store file"
            missing = [name for name in ("audio", "offsets", "labels", "clip_ids", "paths") if name not in f]
            if missing:
                return f"no '{missing[0]}' dataset"
            offsets = f["offsets"][:]
            clips = len(offsets) - 1
            if clips < 0 or offsets[0] != 0 or np.any(np.diff(offsets) < 0):
                return "its clip offsets are not in order"
            if int(offsets[-1]) != f["audio"].shape[0]:
                return f"its offsets end at {int(offsets[-1])} but the audio holds {f['audio'].shape[0]} samples"
            if any(f[name].shape[0] != clips for name in ("labels", "clip_ids", "paths")):
                return "its labels, clip ids or paths disagree with the clip count"
            if int(f.attrs.get("num_clips", clips)) != clips:
                return f"it records {int(f.attrs['num_clips'])} clips but holds {clips}"
            if num_clips is not None and clips != num_clips:
                return f"it holds {clips} clips, the report says {num_clips}"
            if sample_rate is not None and int(f.attrs.get("sample_rate", -1)) != sample_rate:
                return f"its sample rate is {f.attrs.get('sample_rate')}, expected {sample_rate}"
            for name in ("labels", "clip_ids", "paths"):  # one entry per clip: small, read whole
                f[name][:]
            ids = f["clip_ids"][:]
            if clips and (not all(len(i) for i in ids) or len(set(ids)) != clips):
                return "its clip ids are empty or repeat (overwritten?)"
            if f["audio"].shape[0]:  # first and last chunk: a file cut short cannot give the last
                f["audio"][0], f["audio"][-1]
            json.loads(f.attrs.get("label_names", "[]"))
    except FileNotFoundError:
        return "missing"
    except (OSError, KeyError, ValueError, TypeError) as exc:
        text = str(exc).strip().splitlines()
        return f"unreadable ({text[0] if text else type(exc).__name__})"
    return None


class StoreSplit:
    """Read one split file. The HDF5 handle opens lazily and again after a fork (DataLoader workers)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        if not self.path.is_file():
            raise DataError(f"no store file {self.path}")
        self._handle: h5py.File | None = None
        self._pid = -1
        self._identity = _identity(self.path)  # what the file was when opened (check_unchanged)
        problem = check_split(self.path)
        if problem:
            raise DataError(f"{self.path} is damaged: {problem}",
                            hint="run the same `samplecnn preprocess` command again: it rebuilds damaged files")
        try:
            with h5py.File(self.path, "r") as f:
                attrs = dict(f.attrs)
                self.offsets = f["offsets"][:]
                self.labels = f["labels"][:].astype(bool)
                self.clip_ids = [s.decode() if isinstance(s, bytes) else s for s in f["clip_ids"][:]]
                self.paths = [s.decode() if isinstance(s, bytes) else s for s in f["paths"][:]]
        except (OSError, KeyError) as exc:
            raise DataError(f"{self.path} is damaged: {exc}",
                            hint="run the same `samplecnn preprocess` command again: it rebuilds damaged files") from None
        if attrs.get("format") != FORMAT:
            raise DataError(f"{self.path} is not a samplecnn store (no format={FORMAT} attribute)")
        self.attrs = attrs
        self.sample_rate = int(attrs["sample_rate"])
        self.clip_samples = int(attrs.get("clip_samples", 0))
        self.label_names: list[str] = json.loads(attrs["label_names"])
        self.task: str = str(attrs["task"])
        self.dataset: str = str(attrs.get("dataset", ""))
        self.split: str = str(attrs.get("split", self.path.stem))
        self.preprocess: dict = json.loads(attrs.get("preprocess", "{}"))

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def num_clips(self) -> int:
        return len(self)

    @property
    def clip_lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    @property
    def hours(self) -> float:
        return float(self.offsets[-1]) / self.sample_rate / 3600.0

    def _file(self) -> h5py.File:
        if self._handle is None or self._pid != os.getpid():
            self._handle = h5py.File(self.path, "r")
            self._pid = os.getpid()
        return self._handle

    def read(self, index: int, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Samples [start, stop) of clip `index` as int16 (stop defaults to the clip's end)."""
        begin, end = int(self.offsets[index]), int(self.offsets[index + 1])
        stop = end - begin if stop is None else min(stop, end - begin)
        start = max(0, start)
        if stop <= start:
            return np.zeros(0, np.int16)
        try:
            samples = self._file()["audio"][begin + start: begin + stop]
        except (OSError, KeyError, ValueError, RuntimeError) as exc:
            raise self.read_error(exc) from None
        if samples.shape[0] != stop - start:
            raise self.read_error(None)
        self.check_unchanged()  # HDF5 reads past a cut file's end as zeros: never train on those silently
        return samples

    def check_unchanged(self) -> None:
        """DataError when the file is no longer the one opened (rewritten, replaced or cut)."""
        if _identity(self.path) != self._identity:
            raise DataError(f"{self.path} changed while it was being read (rewritten, replaced or cut)",
                            hint="let preprocess finish before training on the store, then run the same "
                                 "command again (train: with --resume)")

    def read_error(self, exc: BaseException | None) -> DataError:
        """The error for a read that failed: the file changed under the reader, or it is damaged."""
        try:
            self.check_unchanged()
        except DataError as changed:
            return changed
        reason = str(exc).strip().splitlines()[0] if exc is not None and str(exc).strip() else "a short read"
        return DataError(f"{self.path} could not be read: {reason}",
                         hint="run the same `samplecnn preprocess` command again: it rebuilds damaged files")

    def read_float(self, index: int, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Like read(), as float32 in [-1, 1)."""
        return self.read(index, start, stop).astype(np.float32) / 32768.0

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def __getstate__(self):  # picklable for DataLoader workers: the handle is reopened there
        state = dict(self.__dict__)
        state["_handle"] = None
        state["_pid"] = -1
        return state

    def audio_layout(self) -> tuple[int, np.ndarray] | None:
        """(samples per chunk, file byte offset of each audio chunk in order) when the int16 audio is
        stored raw (no compression or other filter), so readers may memory-map the file; else None."""
        audio = self._file()["audio"]
        if audio.dtype != np.int16 or audio.compression or audio.shuffle or audio.fletcher32 or audio.scaleoffset:
            return None
        if audio.chunks is None:
            offset = audio.id.get_offset()
            return None if offset is None else (max(audio.shape[0], 1), np.array([offset], np.int64))
        step = audio.chunks[0]
        offsets = np.full(-(-audio.shape[0] // step), -1, np.int64)

        def note(info):  # one pass over the chunk index (get_chunk_info(i) walks it again for every i)
            offsets[info.chunk_offset[0] // step] = info.byte_offset

        audio.id.chunk_iter(note)
        return None if (offsets < 0).any() else (step, offsets)


def _identity(path: Path) -> tuple | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


class Store:
    """A store folder: the split files that exist, checked to agree on rate, labels and task."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        if not self.directory.is_dir():
            raise DataError(f"no store at {self.directory}",
                            hint="preprocess a dataset with `samplecnn preprocess` first")
        self.splits = {name: StoreSplit(self.directory / f"{name}.h5")
                       for name in SPLITS if (self.directory / f"{name}.h5").is_file()}
        if not self.splits:
            raise DataError(f"{self.directory} holds no train.h5, valid.h5 or test.h5",
                            hint="point --data at a folder written by `samplecnn preprocess`")
        first = next(iter(self.splits.values()))
        for split in self.splits.values():
            if (split.sample_rate, split.label_names, split.task) != (first.sample_rate, first.label_names, first.task):
                raise DataError(f"{split.path} disagrees with {first.path} on sample rate, labels or task")
        self.sample_rate = first.sample_rate
        self.label_names = first.label_names
        self.task = first.task
        self.dataset = first.dataset

    def check_unchanged(self) -> None:
        for split in self.splits.values():
            split.check_unchanged()

    def split(self, name: str) -> StoreSplit:
        if name not in self.splits:
            have = ", ".join(self.splits)
            raise DataError(f"store {self.directory} has no '{name}' split (it has: {have})")
        return self.splits[name]

    def __iter__(self) -> Iterator[StoreSplit]:
        return iter(self.splits.values())

    def info(self) -> dict:
        """Clips, hours and label counts per split (what `samplecnn datasets info` shows)."""
        return {
            "path": str(self.directory),
            "dataset": self.dataset,
            "sample_rate": self.sample_rate,
            "task": self.task,
            "label_names": self.label_names,
            "splits": {
                s.split: {
                    "clips": len(s),
                    "hours": round(s.hours, 4),
                    "label_counts": dict(zip(self.label_names, s.labels.sum(axis=0).astype(int).tolist(), strict=True)),
                }
                for s in self
            },
        }
