"""Decode audio files to mono float32 at a chosen rate, and convert to the store's int16.

Decoding is libsndfile through soundfile (WAV, FLAC, OGG, MP3, AU, AIFF, ...). When libsndfile
cannot read a file and an `ffmpeg` executable is on PATH, that file is decoded by ffmpeg instead
(a subprocess, no extra Python package): real releases hold the odd FLAC or MP3 that libsndfile
rejects. Without ffmpeg such files are reported as failed, never fatal.

Resampling is soxr at "HQ" quality: it costs ~4 ms per 30 s of 44.1 kHz audio, about a seventh
of MP3 decoding, so a faster quality would not change throughput noticeably.

Files of any length: `stream` decodes, downmixes and resamples BLOCK_SECONDS of source audio at a time
(soxr's streaming resampler gives exactly the one-shot result), and `decode` is the whole of it. Files
longer than STREAM_AFTER_SECONDS (`is_long`: a DJ mix, an audiobook, a concert) are streamed by every
command, so a 2-hour file needs no more memory than a 5-minute one.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

RESAMPLE_QUALITY = "HQ"
BLOCK_SECONDS = 60  # source audio decoded at a time (stream): memory stays flat in a file's length
STREAM_AFTER_SECONDS = 600  # longer files are streamed in pieces by every command, shorter ones decoded whole
# The rates of the paper's downsampling experiments (Table 3/5), any other positive rate works too.
PAPER_RATES = (2000, 4000, 8000, 12000, 16000, 20000, 22050)
MIN_RATE, MAX_RATE = 1000, 192000


class AudioError(Exception):
    """A file could not be turned into audio; the message is the reason recorded in the report."""


class BrokenMidway(AudioError):
    """libsndfile read the start of a file and then failed (a decode from the start may use ffmpeg)."""


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


def _frames_for(max_seconds: float | None, rate: int) -> int | None:
    """Source frames to read for `max_seconds` of output: a little more than needed, so the resampler
    has context at the cut."""
    return None if max_seconds is None else int(math.ceil(max_seconds * rate)) + 64


def _soundfile_blocks(path: Path, max_seconds: float | None) -> tuple[int, Iterator[np.ndarray]]:
    """(rate, blocks of (frames, channels) float32) read by libsndfile BLOCK_SECONDS at a time. The first
    block is read before returning, so a file libsndfile cannot decode fails here (and falls back)."""
    import soundfile as sf

    mp3 = path.suffix.lower() in (".mp3", ".mp2", ".mpga")
    quiet = quiet_libmpg123 if mp3 else _loud
    with quiet():
        f = sf.SoundFile(str(path))
    try:
        rate, left = f.samplerate, _frames_for(max_seconds, f.samplerate)
        block = BLOCK_SECONDS * rate

        def read() -> np.ndarray:
            nonlocal left
            count = block if left is None else min(block, left)
            if count <= 0:
                return np.zeros((0, f.channels), np.float32)
            with quiet():
                data = f.read(frames=count, dtype="float32", always_2d=True)
            left = None if left is None else left - data.shape[0]
            return data

        first = read()
    except BaseException:
        f.close()
        raise

    def blocks() -> Iterator[np.ndarray]:
        with f:
            data = first
            while data.shape[0]:
                yield data
                if data.shape[0] < block:
                    return
                try:
                    data = read()
                except (sf.LibsndfileError, RuntimeError, ValueError, OSError) as exc:
                    raise BrokenMidway(f"unreadable by libsndfile after the start: {_short(exc)}") from None

    return rate, blocks()


@contextmanager
def _loud():
    yield


def _ffmpeg_blocks(path: Path, max_seconds: float | None) -> tuple[int, Iterator[np.ndarray]]:
    """(rate, mono float32 blocks) decoded by an ffmpeg subprocess (mono downmix done by ffmpeg),
    streamed from its output BLOCK_SECONDS at a time; the first block is read before returning."""
    rate = _ffmpeg_rate(path)
    cmd = ["ffmpeg", "-v", "error", "-nostdin", "-i", str(path)]
    if max_seconds is not None:
        cmd += ["-t", f"{max_seconds + 0.01:.3f}"]
    cmd += ["-ac", "1", "-f", "f32le", "-acodec", "pcm_f32le", "-"]
    errors = tempfile.TemporaryFile()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=errors, stdin=subprocess.DEVNULL)
    size = 4 * BLOCK_SECONDS * rate

    def read() -> np.ndarray:
        raw = proc.stdout.read(size)
        return np.frombuffer(raw[: len(raw) // 4 * 4], dtype=np.float32).reshape(-1, 1)

    def finish() -> None:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        proc.stdout.close()
        errors.close()

    def failed() -> AudioError | None:
        if proc.wait() == 0:
            return None
        errors.seek(0)
        reason = (errors.read().decode(errors="replace").strip().splitlines() or ["no output"])[-1]
        return AudioError(f"ffmpeg could not decode it: {reason}")

    try:
        first = read()
        problem = failed() if not first.shape[0] else None
    except BaseException:
        finish()
        raise
    if problem is not None or not first.shape[0]:
        finish()
        raise problem or AudioError("ffmpeg could not decode it: no output")

    def blocks() -> Iterator[np.ndarray]:
        try:
            data = first
            while data.shape[0]:
                yield data
                data = read()
            problem = failed()
            if problem is not None:
                raise problem
        finally:
            finish()

    return rate, blocks()


def _ffmpeg_rate(path: Path) -> int:
    rate, _ = _ffmpeg_info(path)
    return rate


def _ffmpeg_info(path: Path) -> tuple[int, float | None]:
    """(sample rate, duration in seconds or None) of the first audio stream, as ffmpeg reports them."""
    out = subprocess.run(["ffmpeg", "-hide_banner", "-i", str(path)], capture_output=True, text=True, timeout=60)
    seconds = None
    for line in out.stderr.splitlines():
        if "Duration:" in line and seconds is None:
            stamp = line.split("Duration:")[1].split(",")[0].strip()
            try:
                hours, minutes, secs = stamp.split(":")
                seconds = int(hours) * 3600 + int(minutes) * 60 + float(secs)
            except ValueError:  # "N/A"
                pass
        if "Audio:" in line:
            for part in line.split(","):
                part = part.strip()
                if part.endswith(" Hz"):
                    return int(part.split()[0]), seconds
    raise AudioError("ffmpeg found no audio stream")


def duration(path: str | Path, use_ffmpeg: bool | None = None) -> float | None:
    """Seconds of audio in `path` from its header (libsndfile, else ffmpeg's report), without decoding
    it; None when neither can tell. What decides whether a file is decoded whole or streamed."""
    import soundfile as sf

    try:
        info = sf.info(str(Path(path)))
        return info.frames / info.samplerate if info.samplerate and info.frames >= 0 else None
    except (sf.LibsndfileError, RuntimeError, ValueError, OSError):
        pass
    if not (shutil.which("ffmpeg") is not None if use_ffmpeg is None else use_ffmpeg):
        return None
    try:
        return _ffmpeg_info(Path(path))[1]
    except (AudioError, OSError, subprocess.SubprocessError):
        return None


def is_long(path: str | Path, max_seconds: float | None = None) -> bool:
    """True for a file to stream rather than decode whole: longer than STREAM_AFTER_SECONDS (of which
    at most `max_seconds` are read)."""
    seconds = duration(path)
    if seconds is None:
        return False
    return min(seconds, max_seconds if max_seconds is not None else seconds) > STREAM_AFTER_SECONDS


def _source(path: Path, max_seconds: float | None, use_ffmpeg: bool | None) -> tuple[int, Iterator[np.ndarray]]:
    """libsndfile's blocks, or ffmpeg's when libsndfile cannot read the file and ffmpeg may be used."""
    import soundfile as sf

    if not path.is_file():
        raise AudioError("file not found")
    if path.stat().st_size == 0:
        raise AudioError("empty file (0 bytes)")
    try:
        return _soundfile_blocks(path, max_seconds)
    except (sf.LibsndfileError, RuntimeError, ValueError, OSError) as exc:
        fallback = shutil.which("ffmpeg") is not None if use_ffmpeg is None else use_ffmpeg
        if not fallback:
            raise AudioError(f"unreadable by libsndfile: {_short(exc)}") from None
        try:
            return _ffmpeg_blocks(path, max_seconds)
        except (OSError, subprocess.SubprocessError) as ff_exc:
            raise AudioError(f"unreadable by libsndfile ({_short(exc)}) and ffmpeg ({_short(ff_exc)})") from None


def stream(path: str | Path, sample_rate: int, *, max_seconds: float | None = None,
           use_ffmpeg: bool | None = None) -> Iterator[np.ndarray]:
    """Mono float32 pieces of `path` at `sample_rate`, in order: BLOCK_SECONDS of source audio are decoded,
    downmixed and resampled (soxr's streaming resampler, equal to a one-shot resample) at a time, so
    memory does not grow with the file's length. Their concatenation is `decode(path, sample_rate)`.

    Raises AudioError: before the first piece for a file that cannot be read at all (missing, empty,
    corrupt, unsupported); later for one that breaks half way (BrokenMidway), holds non-finite samples,
    or holds none. `use_ffmpeg=None` falls back to ffmpeg only when it is installed."""
    path = Path(path)
    rate, blocks = _source(path, max_seconds, use_ffmpeg)
    yield from _resampled(rate, blocks, sample_rate, max_seconds)


def _resampled(rate: int, blocks: Iterator[np.ndarray], sample_rate: int,
               max_seconds: float | None) -> Iterator[np.ndarray]:
    import soxr

    limit = None if max_seconds is None else int(round(max_seconds * sample_rate))
    resampler = None if rate == sample_rate else \
        soxr.ResampleStream(rate, sample_rate, 1, dtype="float32", quality=RESAMPLE_QUALITY)
    produced = source_frames = 0

    def piece(out: np.ndarray) -> np.ndarray:
        nonlocal produced
        if limit is not None:
            out = out[: max(0, limit - produced)]
        produced += out.shape[0]
        return np.ascontiguousarray(out, dtype=np.float32)

    try:
        for data in blocks:
            source_frames += data.shape[0]
            mono = downmix(data)
            if not np.all(np.isfinite(mono)):
                raise AudioError("decoded samples are not finite")
            out = piece(resampler.resample_chunk(mono, last=False) if resampler is not None else mono)
            if out.shape[0]:
                yield out
    finally:  # the file (or the ffmpeg process) closes however the stream ends
        getattr(blocks, "close", lambda: None)()
    if not source_frames:
        raise AudioError("no audio samples")
    if resampler is not None:
        out = piece(resampler.resample_chunk(np.zeros(0, np.float32), last=True))
        if out.shape[0]:
            yield out


def decode(path: str | Path, sample_rate: int, *, max_seconds: float | None = None,
           use_ffmpeg: bool | None = None) -> np.ndarray:
    """Mono float32 samples of `path` at `sample_rate` (at most `max_seconds` of them when given): the
    whole of `stream`. A file libsndfile fails half way through is decoded again by ffmpeg, when there.

    Raises AudioError (missing, empty, corrupt, unsupported file) with a short reason.
    """
    try:
        pieces = list(stream(path, sample_rate, max_seconds=max_seconds, use_ffmpeg=use_ffmpeg))
    except BrokenMidway:
        fallback = shutil.which("ffmpeg") is not None if use_ffmpeg is None else use_ffmpeg
        if not fallback:
            raise
        rate, blocks = _ffmpeg_blocks(Path(path), max_seconds)
        pieces = list(_resampled(rate, blocks, sample_rate, max_seconds))
    return np.concatenate(pieces) if len(pieces) != 1 else pieces[0]


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
