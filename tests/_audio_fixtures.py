"""Helpers for the audio / dataset / preprocess tests: generated audio files and the shared data path."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SPLITS = SHARED / "splits"


def need_shared(*parts: str) -> Path:
    """The path under ../shared/data, or skip the test when it is absent (a fresh clone has none)."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data not available: {path} is absent (only in the project's shared checkout)")
    return path


def tone(seconds: float, sr: int, freq: float = 440.0, channels: int = 1, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(round(seconds * sr))) / sr
    x = amp * np.sin(2 * np.pi * freq * t)
    if channels == 1:
        return x.astype(np.float32)
    return np.stack([x * (c + 1) / channels for c in range(channels)], axis=1).astype(np.float32)


def write_audio(path: Path, seconds: float = 1.0, sr: int = 16000, freq: float = 440.0, channels: int = 1) -> Path:
    """Write a tone; the format follows the suffix (.wav .flac .ogg .mp3 .au)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    kwargs = {"format": "MP3", "subtype": "MPEG_LAYER_III"} if path.suffix == ".mp3" else {}
    if path.suffix == ".au":
        kwargs = {"format": "AU", "subtype": "PCM_16"}
    sf.write(str(path), tone(seconds, sr, freq, channels), sr, **kwargs)
    return path


def write_corrupt(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunkjunk" + bytes(range(200)))
    return path


def write_pickle(path: Path, obj) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)
    return path


def load_py2_pickle(path: Path):
    with open(path, "rb") as f:
        return pickle.load(f, encoding="latin1")
