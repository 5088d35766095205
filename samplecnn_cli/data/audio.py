"""Decode audio files to mono float32 at a chosen rate, and convert to the store's int16.

Decoding is libsndfile through soundfile (WAV, FLAC, OGG, MP3, AU, AIFF, ...). When libsndfile
cannot read a file and an `ffmpeg` executable is on PATH, that file is decoded by ffmpeg instead
(a subprocess, no extra Python package): real releases hold the odd FLAC or MP3 that libsndfile
rejects. Without ffmpeg such files are reported as failed, never fatal.

Resampling is soxr at "HQ" quality: it costs ~4 ms per 30 s of 44.1 kHz audio, about a seventh
of MP3 decoding, so a faster quality would not change throughput noticeably.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path

import numpy as np

RESAMPLE_QUALITY = "HQ"
# The rates of the paper's downsampling experiments (Table 3/5), any other positive rate works too.
PAPER_RATES = (2000, 4000, 8000, 12000, 16000, 20000, 22050)
MIN_RATE, MAX_RATE = 1000, 192000


class AudioError(Exception):
    """A file could not be turned into audio; the message is the reason recorded in the report."""


def check_rate(sample_rate: int) -> int:
    """The rate as int, or ValueError when it is not a usable sample rate."""
    rate = int(sample_rate)
    if rate != sample_rate or not MIN_RATE <= rate <= MAX_RATE:
        raise ValueError(f"sample rate must be a whole number of Hz in [{MIN_RATE}, {MAX_RATE}], not {sample_rate}")
    return rate


# libmpg123 (inside libsndfile) prints warnings such as "Xing stream size off by more than 1%, fuzzy
# seeking may be even more fuzzy than by design!" from C straight to file descriptor 2, where Python-level
# redirects cannot catch them. While an MP3 is opened and read, fd 2 points at a temporary file; then
# everything that landed there except libmpg123's own chatter is written back to the real stderr, so
# nothing else (another thread's output) is lost. Nested and concurrent decodes share one redirect.
_MPG123_NOISE = ("Xing stream size", "[src/libmpg123/", "Note: Illegal Audio-MPEG-Header", "Note: Trying to resync")
_fd2 = {"lock": threading.Lock(), "users": 0, "saved": None, "capture": None}


def _is_mpg123_noise(line: bytes) -> bool:
    text = line.decode(errors="replace")
    return any(marker in text for marker in _MPG123_NOISE)


@contextmanager
def quiet_libmpg123():
    redirected = True
    with _fd2["lock"]:
        if _fd2["users"] == 0:
            try:
                sys.stderr.flush()
                capture = tempfile.TemporaryFile()
                saved = os.dup(2)
                os.dup2(capture.fileno(), 2)
                _fd2["saved"], _fd2["capture"] = saved, capture
            except (OSError, ValueError):  # no usable fd 2 (closed, or an embedded interpreter)
                redirected = False
        if redirected:
            _fd2["users"] += 1
    try:
        yield
    finally:
        if redirected:
            _release_fd2()


def _release_fd2() -> None:
    with _fd2["lock"]:
        _fd2["users"] -= 1
        if _fd2["users"]:
            return
        saved, capture = _fd2["saved"], _fd2["capture"]
        os.dup2(saved, 2)
        os.close(saved)
        capture.seek(0)
        kept = [line for line in capture.read().splitlines(keepends=True) if not _is_mpg123_noise(line)]
        capture.close()
        if kept:
            os.write(2, b"".join(kept))


def _read_soundfile(path: Path, max_seconds: float | None) -> tuple[np.ndarray, int]:
    if path.suffix.lower() in (".mp3", ".mp2", ".mpga"):
        with quiet_libmpg123():
            return _read_soundfile_loudly(path, max_seconds)
    return _read_soundfile_loudly(path, max_seconds)


def _read_soundfile_loudly(path: Path, max_seconds: float | None) -> tuple[np.ndarray, int]:
    import soundfile as sf

    with sf.SoundFile(str(path)) as f:
        frames = -1
        if max_seconds is not None:
            # a little more than needed so the resampler has context at the cut
            frames = int(math.ceil(max_seconds * f.samplerate)) + 64
        data = f.read(frames=frames, dtype="float32", always_2d=True)
        return data, f.samplerate


def _read_ffmpeg(path: Path, max_seconds: float | None) -> tuple[np.ndarray, int]:
    """Decode with ffmpeg to float32 at the source rate, mono downmix done by ffmpeg."""
    rate = _ffmpeg_rate(path)
    cmd = ["ffmpeg", "-v", "error", "-nostdin", "-i", str(path)]
    if max_seconds is not None:
        cmd += ["-t", f"{max_seconds + 0.01:.3f}"]
    cmd += ["-ac", "1", "-f", "f32le", "-acodec", "pcm_f32le", "-"]
    out = subprocess.run(cmd, capture_output=True, timeout=600)
    if out.returncode != 0 or not out.stdout:
        reason = (out.stderr.decode(errors="replace").strip().splitlines() or ["no output"])[-1]
        raise AudioError(f"ffmpeg could not decode it: {reason}")
    return np.frombuffer(out.stdout, dtype=np.float32).reshape(-1, 1), rate


def _ffmpeg_rate(path: Path) -> int:
    out = subprocess.run(["ffmpeg", "-hide_banner", "-i", str(path)], capture_output=True, text=True, timeout=60)
    for line in out.stderr.splitlines():
        if "Audio:" in line:
            for part in line.split(","):
                part = part.strip()
                if part.endswith(" Hz"):
                    return int(part.split()[0])
    raise AudioError("ffmpeg found no audio stream")


def decode(path: str | Path, sample_rate: int, *, max_seconds: float | None = None,
           use_ffmpeg: bool | None = None) -> np.ndarray:
    """Mono float32 samples of `path` at `sample_rate` (at most `max_seconds` of them when given).

    Raises AudioError (missing, empty, corrupt, unsupported file) with a short reason.
    `use_ffmpeg=None` falls back to ffmpeg only when it is installed.
    """
    import soundfile as sf
    import soxr

    path = Path(path)
    if not path.is_file():
        raise AudioError("file not found")
    if path.stat().st_size == 0:
        raise AudioError("empty file (0 bytes)")
    try:
        data, rate = _read_soundfile(path, max_seconds)
    except (sf.LibsndfileError, RuntimeError, ValueError, OSError) as exc:
        fallback = shutil.which("ffmpeg") is not None if use_ffmpeg is None else use_ffmpeg
        if not fallback:
            raise AudioError(f"unreadable by libsndfile: {_short(exc)}") from None
        try:
            data, rate = _read_ffmpeg(path, max_seconds)
        except (OSError, subprocess.SubprocessError) as ff_exc:
            raise AudioError(f"unreadable by libsndfile ({_short(exc)}) and ffmpeg ({_short(ff_exc)})") from None
    if data.shape[0] == 0:
        raise AudioError("no audio samples")
    mono = downmix(data)
    if not np.all(np.isfinite(mono)):
        raise AudioError("decoded samples are not finite")
    if rate != sample_rate:
        mono = soxr.resample(mono, rate, sample_rate, quality=RESAMPLE_QUALITY)
    if max_seconds is not None:
        mono = mono[: int(round(max_seconds * sample_rate))]
    return np.ascontiguousarray(mono, dtype=np.float32)


def downmix(data: np.ndarray) -> np.ndarray:
    """(frames, channels) -> mono mean. Summing column by column: numpy's mean over a short last
    axis is ~20x slower than the MP3 decoding itself."""
    if data.shape[1] == 1:
        return data[:, 0]
    mono = data[:, 0].copy()
    for channel in range(1, data.shape[1]):
        mono += data[:, channel]
    mono *= 1.0 / data.shape[1]
    return mono


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[-1][:200] if text else type(exc).__name__


def fit_length(samples: np.ndarray, length: int) -> np.ndarray:
    """Trim to `length` samples, or pad the end with zeros."""
    if samples.shape[0] >= length:
        return samples[:length]
    out = np.zeros(length, dtype=samples.dtype)
    out[: samples.shape[0]] = samples
    return out


def to_int16(samples: np.ndarray) -> np.ndarray:
    """float in [-1, 1] -> int16 (clipped; the store reads it back as x / 32768)."""
    return np.clip(np.round(samples * 32768.0), -32768, 32767).astype(np.int16)


def write(path: str | Path, samples: np.ndarray, sample_rate: int) -> None:
    """Write mono float samples; the format follows the suffix (.wav, .flac, .ogg, .mp3)."""
    import soundfile as sf

    path = Path(path)
    suffix = path.suffix.lower()
    kwargs: dict = {}
    if suffix == ".mp3":
        kwargs = {"format": "MP3", "subtype": "MPEG_LAYER_III"}
    elif suffix == ".wav":
        kwargs = {"subtype": "PCM_16"}
    sf.write(str(path), samples, sample_rate, **kwargs)
