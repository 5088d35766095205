"""`toy`: a small generated multi-label dataset of real audio files, the demo's default data.

`make_toy(DIR)` writes DIR/audio/NNNN.{wav,flac,mp3} (the three formats in turn) and DIR/labels.csv
(path,tags,split). Each clip is synthesized from three kinds of tag, all audible in every 0.5 s:
    instrument  flute (sine + vibrato + breath), organ (odd harmonics, square-like),
                pluck (Karplus-Strong string), drums (kick + noise snare) -- 1 or 2 pitched
                instruments per clip, drums on top in about a third of the clips
    register    low (MIDI 45-57, 110-220 Hz) or high (MIDI 76-88, 659-1319 Hz)
    rhythm      slow (2 notes/s) or fast (8 notes/s)
Same seed, same files. Defaults (240 clips x 3.5 s at 22,050 Hz, ~14 min of audio) take a few
seconds to make and are learnable by a small SampleCNN on a CPU in minutes.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
from pathlib import Path

import numpy as np

from samplecnn_cli.core.errors import DataError, UsageError
from samplecnn_cli.data.datasets.base import Manifest
from samplecnn_cli.data.datasets.folder import Folder

INSTRUMENTS = ("flute", "organ", "pluck")
TAGS = ("flute", "organ", "pluck", "drums", "low", "high", "slow", "fast")
REGISTERS = {"low": (45, 57), "high": (76, 88)}
NOTES_PER_SECOND = {"slow": 2.0, "fast": 8.0}
PENTATONIC = (0, 2, 4, 7, 9)
FORMATS = (".wav", ".flac", ".mp3")
SPLIT_FRACTIONS = (("train", 0.7), ("valid", 0.15), ("test", 0.15))
# A third of the clips are MP3, and MP3 exists only at these rates
MP3_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)
MAX_CLIPS = 100_000


def _midi_hz(note: float) -> float:
    return 440.0 * 2.0 ** ((note - 69) / 12)


def _envelope(n: int, sr: int, attack: float, release: float) -> np.ndarray:
    env = np.ones(n, np.float32)
    a, r = min(n, int(attack * sr)), min(n, int(release * sr))
    if a:
        env[:a] = np.linspace(0, 1, a, dtype=np.float32)
    if r:
        env[n - r:] *= np.linspace(1, 0, r, dtype=np.float32)
    return env


def _flute(freq: float, n: int, sr: int, rng) -> np.ndarray:
    t = np.arange(n) / sr
    phase = 2 * np.pi * freq * t + 0.004 * freq / 5.0 * np.sin(2 * np.pi * 5.0 * t)  # 5 Hz vibrato
    tone = np.sin(phase) + 0.15 * np.sin(2 * phase)
    breath = 0.04 * rng.standard_normal(n)
    return (tone + breath) * _envelope(n, sr, 0.04, 0.03)


def _organ(freq: float, n: int, sr: int, rng) -> np.ndarray:
    t = np.arange(n) / sr
    tone = np.zeros(n)
    for k in range(1, 16, 2):  # odd harmonics 1/k: a band-limited square wave
        if k * freq >= sr / 2:
            break
        tone += np.sin(2 * np.pi * k * freq * t) / k
    return 0.8 * tone * _envelope(n, sr, 0.005, 0.01)


def _pluck(freq: float, n: int, sr: int, rng) -> np.ndarray:
    """Karplus-Strong: a noise burst circulating in a delay line with an averaging (decaying) filter."""
    delay = max(2, int(round(sr / freq)))
    y = np.zeros(n + 1)  # y[0] is a leading zero so y[k - delay - 1] exists for the first period
    y[1:1 + delay] = rng.uniform(-1, 1, min(delay, n))
    for start in range(1 + delay, n + 1, delay):  # one period at a time: each depends only on the last
        end = min(start + delay, n + 1)
        y[start:end] = 0.498 * (y[start - delay:end - delay] + y[start - delay - 1:end - delay - 1])
    return y[1:] * _envelope(n, sr, 0.0, 0.01)


def _drum_hit(n: int, sr: int, kick: bool, rng) -> np.ndarray:
    t = np.arange(n) / sr
    if kick:
        freq = 50 + 100 * np.exp(-t / 0.03)
        return np.sin(2 * np.pi * np.cumsum(freq) / sr) * np.exp(-t / 0.08)
    noise = rng.standard_normal(n)
    noise = np.diff(noise, prepend=0.0)  # brighter: a crude high-pass
    return 0.5 * noise * np.exp(-t / 0.05)


SYNTHS = {"flute": _flute, "organ": _organ, "pluck": _pluck}
GATE = {"flute": 0.8, "organ": 0.8, "pluck": 1.0}  # fraction of the beat a note sounds


def synthesize(tags: dict, seconds: float, sr: int, rng: np.random.Generator) -> np.ndarray:
    """One clip for the chosen instruments, register and rhythm."""
    n = int(round(seconds * sr))
    out = np.zeros(n)
    rate = NOTES_PER_SECOND[tags["rhythm"]] * rng.uniform(0.9, 1.1)
    step = 1.0 / rate
    onsets = np.arange(rng.uniform(0, 0.05), seconds, step)
    low, high = REGISTERS[tags["register"]]
    scale = [m for m in range(low, high + 1) if (m - low) % 12 in PENTATONIC]
    for name in tags["instruments"]:
        voice = np.zeros(n)
        note = -1
        for onset in onsets:
            start = int(onset * sr)
            # sustained instruments stop a little early: the gap makes every onset (the rhythm) audible
            length = min(n - start, int(step * sr * GATE[name]))
            if length <= 0:
                continue
            note = rng.choice([m for m in scale if m != note])  # never the same note twice in a row
            voice[start:start + length] += SYNTHS[name](_midi_hz(note), length, sr, rng)
        out += rng.uniform(0.6, 1.0) * voice / (np.abs(voice).max() + 1e-9)
    if tags["drums"]:
        drums = np.zeros(n)
        for k, onset in enumerate(onsets):
            start = int(onset * sr)
            length = min(n - start, int(0.15 * sr))
            drums[start:start + length] += _drum_hit(length, sr, kick=k % 2 == 0, rng=rng)
        out += rng.uniform(0.5, 0.8) * drums / (np.abs(drums).max() + 1e-9)
    out += 0.003 * rng.standard_normal(n)  # a little noise floor, like a real recording
    return (out / (np.abs(out).max() + 1e-9) * rng.uniform(0.5, 0.9)).astype(np.float32)


def _choose_tags(rng: np.random.Generator) -> dict:
    count = 1 if rng.random() < 0.5 else 2
    instruments = sorted(rng.choice(INSTRUMENTS, size=count, replace=False).tolist())
    return {"instruments": instruments, "drums": bool(rng.random() < 0.35),
            "register": str(rng.choice(list(REGISTERS))), "rhythm": str(rng.choice(list(NOTES_PER_SECOND)))}


def make_toy(directory: Path, *, clips: int = 240, seconds: float = 3.5, seed: int = 0,
             sample_rate: int = 22050) -> dict:
    """Write the toy dataset into `directory` (created; must be empty or absent). Returns a summary.

    Every option is checked before anything is written. The files are written into a hidden sibling
    folder that is renamed to `directory` when complete, so a failed or killed run leaves nothing that
    blocks the next one (its leftover is removed by the next run).
    """
    _check_options(clips, seconds, seed, sample_rate)
    directory = Path(directory).expanduser()
    if os.path.lexists(directory) and not directory.is_dir():  # a file, a dangling link or a link loop
        raise DataError(f"{directory} exists and is not a folder", hint="make the toy dataset in a new folder")
    if directory.exists() and any(directory.iterdir()):
        raise DataError(f"{directory} is not empty", hint="make the toy dataset in a new or empty folder")
    final, directory = directory, directory.with_name(f".{directory.name}.partial")
    if directory.exists():  # left by a run that was killed
        shutil.rmtree(directory)
    try:
        (directory / "audio").mkdir(parents=True)
    except OSError as exc:
        raise DataError(f"cannot create {final}: {exc.strerror or exc}") from None
    try:
        rows = _write_clips(directory, clips, seconds, seed, sample_rate)
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=["path", "tags", "split"], lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        tmp = directory / "labels.csv.tmp"
        tmp.write_text(buffer.getvalue())
        os.replace(tmp, directory / "labels.csv")  # written last: its presence means the dataset is whole
        if final.exists():
            final.rmdir()  # checked empty above
        os.replace(directory, final)
    except BaseException:  # a full disk, Ctrl-C, SIGTERM: the half-made dataset goes
        shutil.rmtree(directory, ignore_errors=True)
        raise
    counts = {tag: sum(tag in r["tags"].split(";") for r in rows) for tag in TAGS}
    return {"path": str(final), "clips": clips, "seconds": seconds, "sample_rate": sample_rate,
            "seed": seed, "splits": {s: sum(r["split"] == s for r in rows) for s, _ in SPLIT_FRACTIONS},
            "tag_counts": counts}


def _check_options(clips: int, seconds: float, seed: int, sample_rate: int) -> None:
    if not 6 <= clips <= MAX_CLIPS:
        raise UsageError(f"--clips must be between 6 and {MAX_CLIPS:,} (got {clips}) so every split gets clips")
    if not 0.5 <= seconds <= 60:
        raise UsageError(f"--seconds must be between 0.5 and 60 (got {seconds})")
    if sample_rate not in MP3_RATES:
        raise UsageError(f"--sr must be one of {', '.join(map(str, MP3_RATES))} Hz (got {sample_rate})",
                         hint="a third of the toy clips are MP3 files, which exist only at these rates")
    if seed < 0:
        raise UsageError(f"--seed must be 0 or more (got {seed})")


def _write_clips(directory: Path, clips: int, seconds: float, seed: int, sample_rate: int) -> list[dict]:
    """Every clip's audio file (written atomically) and its labels.csv row."""
    from samplecnn_cli.data import audio

    rng = np.random.default_rng(seed)
    order = rng.permutation(clips)
    bounds = np.cumsum([0] + [int(round(f * clips)) for _, f in SPLIT_FRACTIONS[:-1]])
    split_of = {}
    for (name, _), lo, hi in zip(SPLIT_FRACTIONS, bounds, [*bounds[1:], clips], strict=True):
        for i in order[lo:hi]:
            split_of[int(i)] = name
    rows = []
    for i in range(clips):
        clip_rng = np.random.default_rng([seed, i])  # each clip on its own stream: stable under --clips
        tags = _choose_tags(clip_rng)
        samples = synthesize(tags, seconds, sample_rate, clip_rng)
        rel = f"audio/{i:04d}{FORMATS[i % len(FORMATS)]}"
        tmp = directory / (rel + ".part" + FORMATS[i % len(FORMATS)])
        audio.write(tmp, samples, sample_rate)
        os.replace(tmp, directory / rel)
        names = [*tags["instruments"], *(["drums"] if tags["drums"] else []), tags["register"], tags["rhythm"]]
        rows.append({"path": rel, "tags": ";".join(names), "split": split_of[i]})
    return rows


class Toy(Folder):
    name = "toy"
    description = "generated multi-label demo set (instruments, registers, rhythms); made on first use"
    task = "multilabel"
    default_clip_seconds = None
    options = ("seed", "clips", "seconds")  # used when the dataset is generated

    def load(self, root: Path, options: dict) -> Manifest:
        root = Path(root).expanduser()
        if not (root / "labels.csv").is_file():
            if root.exists() and any(root.iterdir()):
                raise DataError(f"{root} has no labels.csv and is not empty: not a toy dataset",
                                hint="point --root at a folder made by `samplecnn datasets make-toy`, or a new one")
            make_toy(root, seed=int(options.get("seed", 0) or 0), clips=int(options.get("clips") or 240),
                     seconds=float(options.get("seconds") or 3.5))
            note = f"generated the toy dataset in {root}"
        else:
            note = ""
        manifest = super().load(root, {k: v for k, v in options.items() if k not in self.options})
        manifest.dataset = self.name
        if note:
            manifest.notes.insert(0, note)
        return manifest
