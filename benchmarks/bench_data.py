"""Data-path benchmark: `samplecnn bench data` on a generated store larger than the page cache can hold
for it, read cold.

    .venv/bin/python benchmarks/bench_data.py --gb 8 --out /tmp/bench-store [--drop-caches] [--workers 0,1,2]

Writes train.h5 (30-s clips of random int16 at 16 kHz, written as `samplecnn preprocess` writes them:
chunked raw int16) once, then, with --drop-caches, evicts the store from the page cache before each
worker count so every segment read goes to the disk, and prints the JSON of `samplecnn bench data`
with the machine's memory and load beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from samplecnn_cli.data.store import SplitWriter

CLIP = 30 * 16000


def make_store(out: Path, gigabytes: float) -> Path:
    path = out / "train.h5"
    if path.is_file() and path.stat().st_size >= gigabytes * 0.95e9:
        return out
    clips = int(gigabytes * 1e9 / (2 * CLIP))
    rng = np.random.default_rng(0)
    with SplitWriter(path, sample_rate=16000, label_names=["a", "b"], task="multiclass", dataset="synthetic",
                     split="train") as writer:
        for begin in range(0, clips, 64):
            n = min(64, clips - begin)
            audio = rng.integers(-3000, 3000, size=n * CLIP, dtype=np.int16)
            labels = np.eye(2, dtype=bool)[np.arange(n) % 2]
            writer.extend(audio, np.arange(n + 1) * CLIP, labels, [f"c{begin + i}" for i in range(n)],
                          [f"c{begin + i}.wav" for i in range(n)])
    return out


def drop_caches(store: Path) -> None:
    """Evict the store's pages from the page cache (posix_fadvise DONTNEED: no root needed, and only
    this file's pages go, so the rest of the machine keeps its cache)."""
    os.sync()
    for path in store.glob("*.h5"):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--gb", type=float, default=8.0)
    parser.add_argument("--out", type=Path, default=Path("/tmp/samplecnn-bench-store"))
    parser.add_argument("--workers", default="0,1,2")
    parser.add_argument("--batches", type=int, default=150)
    parser.add_argument("--drop-caches", action="store_true")
    args = parser.parse_args()
    store = make_store(args.out, args.gb)
    rows = []
    for w in args.workers.split(","):
        if args.drop_caches:
            drop_caches(store)
        out = subprocess.run([sys.executable, "-m", "samplecnn_cli", "bench", "data", str(store), "--workers", w,
                              "--batches", str(args.batches), "--json"], check=True, capture_output=True, text=True)
        rows.append(json.loads(out.stdout))
    meminfo = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
    print(json.dumps({"store_gb": round(rows[0]["store_bytes"] / 1e9, 2), "cold": args.drop_caches,
                      "mem_total": meminfo["MemTotal"].strip(), "load": os.getloadavg(),
                      "results": [r for row in rows for r in row["results"]]}, indent=2))


if __name__ == "__main__":
    main()
