"""Cutting clips into model-sized segments, the paper's way.

Training uses every non-overlapping segment of every clip (a clip shorter than one segment is
zero-padded to one). Song-level prediction runs the model over all segments of a clip and averages.
"""

from __future__ import annotations

import os

import numpy as np

from samplecnn_cli.data.store import StoreSplit


def segment_starts(length: int, input_samples: int) -> list[int]:
    """Starts of the non-overlapping segments of a clip of `length` samples (at least one)."""
    count = max(1, length // input_samples)
    return [i * input_samples for i in range(count)]


def read_segment(split: StoreSplit, index: int, start: int, input_samples: int) -> np.ndarray:
    """One float32 segment in [-1, 1), zero-padded at the end when the clip is short."""
    audio = split.read_float(index, start, start + input_samples)
    if audio.shape[0] < input_samples:
        audio = np.pad(audio, (0, input_samples - audio.shape[0]))
    return audio


def segment_index(split: StoreSplit, input_samples: int) -> np.ndarray:
    """(clip, start) of every training segment of a split, as an int64 array (segments, 2)."""
    rows = [(i, s) for i, length in enumerate(split.clip_lengths) for s in segment_starts(int(length), input_samples)]
    return np.asarray(rows, dtype=np.int64).reshape(-1, 2)


class AudioMap:
    """A split's int16 audio read straight from its file with os.preadv (when it is stored raw).

    One h5py call per segment costs more than the copy itself, and h5py serialises all calls; a
    positional read is one system call that releases the GIL, so reader threads run in parallel.
    The file is reopened lazily in each process. Splits whose audio is compressed fall back to
    StoreSplit.read."""

    def __init__(self, split: StoreSplit):
        self.split = split
        self.layout = split.audio_layout()
        self._fd, self._pid = -1, -1

    def __getstate__(self):
        return {**self.__dict__, "_fd": -1, "_pid": -1}

    def __del__(self):
        if self._fd >= 0 and self._pid == os.getpid():
            os.close(self._fd)

    def _file(self) -> int:
        if self._pid != os.getpid():
            self._fd, self._pid = os.open(self.split.path, os.O_RDONLY), os.getpid()
        return self._fd

    def read_into(self, out: np.ndarray, clip: int, start: int) -> None:
        """Fill float32 `out` (T,) with clip `clip`'s samples from `start` in [-1, 1), zero-padded."""
        begin, end = int(self.split.offsets[clip]), int(self.split.offsets[clip + 1])
        count = max(0, min(out.shape[0], end - begin - start))
        if self.layout is None:
            out[:count] = self.split.read(clip, start, start + count) / np.float32(32768.0)
        else:
            self._copy(out[:count], begin + start)
        out[count:] = 0.0

    def _copy(self, out: np.ndarray, position: int) -> None:
        step, offsets = self.layout
        raw = np.empty(out.shape[0], np.int16)
        done = 0
        while done < out.shape[0]:
            chunk, within = divmod(position + done, step)
            take = min(step - within, out.shape[0] - done)
            try:
                got = os.preadv(self._file(), [raw[done:done + take]], int(offsets[chunk]) + 2 * within)
            except OSError as exc:
                raise self.split.read_error(exc) from None
            if got != 2 * take:  # the file was cut (or rewritten) under the reader
                raise self.split.read_error(None)
            done += take
        np.multiply(raw, np.float32(1 / 32768.0), out=out, casting="unsafe")
