"""Preprocessing throughput on a generated MP3 corpus; prints JSON.

The corpus: 30 s, 44.1 kHz, stereo, 128 kbps CBR MP3s written by soundfile/libsndfile (its LAME
encoder; no system package needed). A few distinct clips are encoded and copied to --files files
(decoding cost does not depend on the content being unique). The corpus is kept in --corpus DIR
and reused. Measured: the whole `preprocess` run (folder adapter, whole clips, --workers, 22,050 Hz
store, merge included) as x realtime = audio seconds / wall seconds, plus single-core decode-only
speed and peak memory of the workers. Goal: >= 800x realtime on 2 cores.

    .venv/bin/python benchmarks/bench_preprocess.py --files 120 --workers 2
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

SECONDS, RATE = 30.0, 44100
# libsndfile maps compression level 0..1 linearly onto 320..32 kbps for constant bit rate
LEVEL_128K = (320 - 128) / (320 - 32)
DISTINCT = 4


def music_like(seed: int) -> np.ndarray:
    """30 s of stereo chords with a noisy percussion track: realistic work for the MP3 encoder."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(SECONDS * RATE)) / RATE
    left = np.zeros_like(t)
    for k in range(4):
        freq = 110 * 2 ** (rng.integers(0, 24) / 12)
        left += np.sin(2 * np.pi * freq * t) * (0.5 + 0.5 * np.sin(2 * np.pi * (0.2 + k) * t))
    hits = (np.sin(2 * np.pi * 2 * t) > 0.95) * rng.standard_normal(t.shape)
    right = 0.7 * left + 0.3 * hits
    x = np.stack([left + 0.2 * hits, right], axis=1)
    return (0.8 * x / np.abs(x).max()).astype(np.float32)


def make_corpus(folder: Path, files: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    labels = folder / "labels.csv"
    if labels.is_file() and len(labels.read_text().splitlines()) == files + 1:
        return folder
    sources = []
    for k in range(DISTINCT):
        path = folder / f"src{k}.mp3"
        if not path.is_file():
            sf.write(str(path), music_like(k), RATE, format="MP3", subtype="MPEG_LAYER_III",
                     bitrate_mode="CONSTANT", compression_level=LEVEL_128K)
        sources.append(path)
    rows = ["path,label,split"]
    for i in range(files):
        rel = f"mp3/{i:05d}.mp3"
        (folder / "mp3").mkdir(exist_ok=True)
        if not (folder / rel).is_file():
            shutil.copyfile(sources[i % DISTINCT], folder / rel)
        rows.append(f"{rel},c{i % 4},{('train', 'train', 'valid', 'test')[i % 4]}")
    labels.write_text("\n".join(rows) + "\n")
    return folder


def _cpu_seconds() -> float:
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def decode_only(files: list[Path], sample_rate: int) -> float:
    from samplecnn_cli.data import audio

    start = time.perf_counter()
    for path in files:
        audio.decode(path, sample_rate)
    return len(files) * SECONDS / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=120)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--sr", type=int, default=22050)
    parser.add_argument("--corpus", type=Path, default=Path(tempfile.gettempdir()) / "samplecnn-bench-mp3")
    args = parser.parse_args()

    from samplecnn_cli.data import preprocess as preprocessing
    from samplecnn_cli.data.datasets import get_adapter

    corpus = make_corpus(args.corpus, args.files)
    mp3s = sorted((corpus / "mp3").glob("*.mp3"))[: args.files]
    kbps = os.path.getsize(mp3s[0]) * 8 / SECONDS / 1000
    single = decode_only(mp3s[:8], args.sr)

    manifest = get_adapter("folder").load(corpus, {})
    with tempfile.TemporaryDirectory() as tmp:
        cpu0 = _cpu_seconds()
        start = time.perf_counter()
        result = preprocessing.run(manifest, Path(tmp) / "store",
                            preprocessing.Settings(sample_rate=args.sr, workers=args.workers, clip_seconds=0))
        wall = time.perf_counter() - start
        cpu = _cpu_seconds() - cpu0
        store_mb = sum(p.stat().st_size for p in (Path(tmp) / "store").glob("*.h5")) / 1e6
    audio_seconds = result.written * SECONDS
    print(json.dumps({
        "benchmark": "preprocess",
        "files": result.written,
        "failed": len(result.failed),
        "corpus": {"seconds_per_file": SECONDS, "source_rate": RATE, "channels": 2, "kbps": round(kbps, 1),
                   "encoder": "libsndfile (LAME) via soundfile, CBR"},
        "workers": args.workers,
        "cpu_count": os.cpu_count(),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "sample_rate": args.sr,
        "wall_seconds": round(wall, 2),
        "x_realtime": round(audio_seconds / wall, 1),
        "files_per_second": round(result.written / wall, 2),
        # CPU seconds of the run (parent + workers): on a shared, loaded machine wall time says little;
        # audio seconds per CPU second x 2 is what two dedicated cores reach when the work splits evenly
        "cpu_seconds": round(cpu, 2),
        "x_realtime_per_cpu_core": round(audio_seconds / cpu, 1),
        "x_realtime_2_dedicated_cores_projected": round(2 * audio_seconds / cpu, 1),
        "decode_resample_only_x_realtime_1_core": round(single, 1),
        "store_mb": round(store_mb, 1),
        "peak_rss_mb_parent": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "peak_rss_mb_largest_worker": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1),
        "goal_x_realtime": 800,
    }, indent=2))


if __name__ == "__main__":
    main()
