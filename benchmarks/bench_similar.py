"""`samplecnn similar` over a large library; prints JSON.

Writes an embedding file in `samplecnn embed`'s layout (inference/embeddings.py) holding --files random
512-d embeddings (clustered, as real ones are; the scan does not care), then measures:
    open_seconds   reading /paths and /embedding and scaling the rows to length 1 (inference/similar.py)
    scan_seconds   one query against every row: the matrix-vector product and the top-k (median of --queries)
    cli_seconds    `samplecnn similar EMB.h5 FILE --top 10 --json` for a file of the library, end to end in a
                   fresh process (Python start, imports, the file read, the scan, the JSON)
Goal (issue 21): the linear scan of 100,000 embeddings in under a second.

    .venv/bin/python benchmarks/bench_similar.py --files 100000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def write_library(path: Path, files: int, seed: int = 0) -> None:
    """`files` rows: 64 cluster centres plus noise, non-negative like ReLU outputs."""
    rng = np.random.default_rng(seed)
    centres = np.abs(rng.standard_normal((64, 512))).astype(np.float32)
    rows = centres[rng.integers(0, 64, files)] + 0.3 * np.abs(rng.standard_normal((files, 512))).astype(np.float32)
    text = h5py.string_dtype()
    with h5py.File(path, "w") as f:
        f.attrs.update(format="samplecnn-embeddings", format_version=1, run="", model="sample-3^9",
                       input_samples=59049, sample_rate=22050, hop_seconds=59049 / 22050, precision="fp32",
                       label_names="[]")
        f.create_dataset("paths", data=np.array([f"/music/library/artist {i // 10}/track {i}.mp3"
                                                 for i in range(files)], dtype=object), dtype=text)
        f.create_dataset("embedding", data=rows, chunks=(64, 512), maxshape=(None, 512))


def measure(path: Path, queries: int, top: int) -> dict:
    from samplecnn_cli.inference.similar import open_library, rank

    started = time.perf_counter()
    library = open_library(path)
    opened = time.perf_counter() - started
    rng = np.random.default_rng(1)
    scans = []
    for row in rng.integers(0, len(library.paths), queries):
        began = time.perf_counter()
        rank(library, library.unit[row], top, exclude=int(row))
        scans.append(time.perf_counter() - began)
    return {"open_seconds": round(opened, 4), "scan_seconds_median": round(float(np.median(scans)), 4),
            "scan_seconds_max": round(max(scans), 4), "open_and_scan_seconds": round(opened + float(np.median(scans)), 4)}


def measure_cli(path: Path, top: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    query = "/music/library/artist 0/track 5.mp3"
    times = []
    for _ in range(3):
        began = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "samplecnn_cli", "similar", str(path), query, "--top", str(top),
                               "--json"], capture_output=True, env=env, timeout=300)
        times.append(time.perf_counter() - began)
        assert done.returncode == 0, done.stderr.decode()
    results = json.loads(done.stdout)[0]["results"]
    return {"cli_seconds_median": round(float(np.median(times)), 3), "cli_results": len(results)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=20)
    parser.add_argument("--top", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "emb.h5"
        write_library(path, args.files)
        result = {"files": args.files, "top": args.top, "file_mb": round(path.stat().st_size / 1e6, 1),
                  **measure(path, args.queries, args.top), **measure_cli(path, args.top)}
    result.update(goal_seconds=1.0, goal_met=result["open_and_scan_seconds"] < 1.0,
                  cpu=platform.processor() or platform.machine(), cores=os.cpu_count())
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
