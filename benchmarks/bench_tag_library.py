"""End-to-end tagging of a generated library vs a plain loop; prints JSON.

The library: --files stereo 44.1 kHz 30 s 128 kbps MP3s (bench_preprocess's generator: a few distinct
clips encoded by libsndfile, copied). The model: sample-3^9 at 22,050 Hz, 50 labels, random weights
with non-trivial BN statistics (speed does not depend on training). Two sides, each on every file:
    plain  soundfile decode + downmix + soxr to 22,050 Hz + fp32 eager model under torch.no_grad, one
           file after another (the segments of one file as one batch), mean of sigmoid scores
    ours   `samplecnn tag RUN FOLDER --out tags.csv` (decode pool, shared batches, measured backend),
           run as a subprocess so its peak RSS is its own
Printed: files/s and x realtime of both, the ratio, ours' peak RSS, and the largest score difference
between the two sides (plain fp32 vs ours). With --rss-files N2, ours also tags a folder of N2 files
to show peak memory does not grow with the number of files.

    .venv/bin/python benchmarks/bench_tag_library.py --files 100 [--rss-files 1000] [--plain-files 20]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_preprocess import SECONDS, make_corpus  # noqa: E402

RATE = 22050
LABELS = [f"tag{i}" for i in range(50)]


def make_run(folder: Path) -> Path:
    from samplecnn_cli.models.registry import create_model
    from samplecnn_cli.runs import folder as runs

    run = folder / "run"
    if (run / "checkpoints" / "best.pt").is_file():
        return run
    torch.manual_seed(0)
    kwargs = {"num_outputs": len(LABELS), "sample_rate": RATE}
    model = create_model("sample-3^9", **kwargs)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm1d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 2.0)
    run.mkdir(parents=True, exist_ok=True)
    runs.write_config(run, {"kind": "train", "model": "sample-3^9", "label_names": LABELS, "task": "multilabel",
                            "sample_rate": RATE})
    runs.save_checkpoint(run / "checkpoints" / "best.pt", model_name="sample-3^9", model_kwargs=kwargs,
                         state_dict=model.state_dict(), label_names=LABELS, task="multilabel", sample_rate=RATE)
    return run


def plain_loop(run: Path, files: list[Path]) -> tuple[float, dict[str, np.ndarray]]:
    import soundfile as sf
    import soxr

    from samplecnn_cli.runs import folder as runs

    model = runs.load_run(run).model.eval()
    size = model.input_samples
    scores = {}
    began = time.perf_counter()
    for path in files:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
        mono = soxr.resample(data.mean(axis=1), rate, RATE)
        count = max(1, len(mono) // size)
        segments = torch.from_numpy(np.ascontiguousarray(mono[: count * size].reshape(count, size)))
        with torch.no_grad():
            scores[str(path.resolve())] = torch.sigmoid(model(segments)).mean(0).numpy()
    return time.perf_counter() - began, scores


def ours(run: Path, folder: Path, out: Path, extra: list[str]) -> dict:
    out.unlink(missing_ok=True)
    cmd = [sys.executable, "-c", "import resource, runpy, sys; sys.argv = ['samplecnn'] + sys.argv[1:];"
           "exec('try:\\n runpy.run_module(\"samplecnn_cli\", run_name=\"__main__\")\\nexcept SystemExit: pass');"
           "print('PEAK_RSS_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,"
           " resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)",
           "tag", str(run), str(folder), "--out", str(out), "--json", *extra]
    began = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - began
    if done.returncode != 0:
        raise SystemExit(done.stderr)
    summary = json.loads(done.stdout)
    main_kb, child_kb = next(line.split()[1:] for line in done.stderr.splitlines() if line.startswith("PEAK_RSS_KB"))
    return {**summary, "wall_seconds_with_startup": round(seconds, 2), "peak_rss_main_mb": int(main_kb) // 1024,
            "peak_rss_decode_worker_mb": int(child_kb) // 1024}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=100)
    parser.add_argument("--plain-files", type=int, default=None, help="files for the plain loop (default: all)")
    parser.add_argument("--rss-files", type=int, default=0)
    parser.add_argument("--corpus", type=Path, default=Path(tempfile.gettempdir()) / "samplecnn-bench-tag")
    parser.add_argument("--extra", default="", help="extra options for `samplecnn tag`, e.g. '--engine onnx'")
    args = parser.parse_args()
    corpus = make_corpus(args.corpus / f"lib{args.files}", args.files)
    run = make_run(args.corpus)
    files = sorted((corpus / "mp3").glob("*.mp3"))
    load = os.getloadavg()
    ours_result = ours(run, corpus / "mp3", args.corpus / "tags.csv", args.extra.split())
    plain_files = files[: args.plain_files or len(files)]
    plain_seconds, plain_scores = plain_loop(run, plain_files)
    rows = {r["path"]: r for r in csv.DictReader((args.corpus / "tags.csv").open()) if r["window"] == "all"}
    diff = max(float(np.abs(np.array([float(rows[p][label]) for label in LABELS]) - s).max())
               for p, s in plain_scores.items())
    audio = SECONDS * len(files)
    out = {
        "files": len(files), "threads": torch.get_num_threads(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "load_before": [round(v, 2) for v in load], "load_after": [round(v, 2) for v in os.getloadavg()],
        "plain": {"files": len(plain_files), "seconds": round(plain_seconds, 2),
                  "files_per_second": round(len(plain_files) / plain_seconds, 3),
                  "realtime": round(SECONDS * len(plain_files) / plain_seconds, 1)},
        "ours": {**ours_result, "files_per_second_with_startup": round(len(files) / ours_result["wall_seconds_with_startup"], 3),
                 "realtime_with_startup": round(audio / ours_result["wall_seconds_with_startup"], 1)},
        "max_score_difference_vs_plain": diff,
    }
    out["speedup"] = round(out["ours"]["realtime"] / out["plain"]["realtime"], 2)
    if args.rss_files:
        big = make_corpus(args.corpus / f"lib{args.rss_files}", args.rss_files)
        out["rss_check"] = {"files": args.rss_files, **ours(run, big / "mp3", args.corpus / "tags-big.csv", args.extra.split())}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
