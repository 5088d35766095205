"""Cutting clips into model-sized segments, the paper's way.

Training uses every non-overlapping segment of every clip (a clip shorter than one segment is
zero-padded to one). Song-level prediction runs the model over all segments of a clip and averages.
"""

from __future__ import annotations

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


def clip_segments(split: StoreSplit, index: int, input_samples: int) -> np.ndarray:
    """All non-overlapping segments of clip `index` as a float32 array (segments, input_samples)."""
    audio = split.read_float(index)
    return segments_of(audio, input_samples)


def segments_of(audio: np.ndarray, input_samples: int) -> np.ndarray:
    """Cut a 1-D float waveform into (segments, input_samples), zero-padding a clip shorter than one."""
    if audio.shape[0] < input_samples:
        audio = np.pad(audio, (0, input_samples - audio.shape[0]))
    count = audio.shape[0] // input_samples
    return np.ascontiguousarray(audio[: count * input_samples].reshape(count, input_samples))


def segment_index(split: StoreSplit, input_samples: int) -> np.ndarray:
    """(clip, start) of every training segment of a split, as an int64 array (segments, 2)."""
    rows = [(i, s) for i, length in enumerate(split.clip_lengths) for s in segment_starts(int(length), input_samples)]
    return np.asarray(rows, dtype=np.int64).reshape(-1, 2)
