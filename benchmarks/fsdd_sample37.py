"""FSDD end to end through the CLI: preprocess (8 kHz, official split), train sample-3^7 with the paper's
default recipe, evaluate on the test split. Prints JSON (accuracy, wall times).

    .venv/bin/python benchmarks/fsdd_sample37.py [--work /tmp/fsdd] [--epochs N] [--fsdd ../shared/data/fsdd]

Free Spoken Digit Dataset: 3,000 recordings of 10 digits, 8 kHz; index 0-4 test (300), 5-49 train
(2,700; the folder adapter carves a stratified 10% of it as validation). sample-3^7 takes 6,561
samples (0.82 s), so nearly every clip is one zero-padded segment. Target: >= 0.97 test accuracy.
Rerunning with the same --work resumes the training run where it stopped.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def cli(*args: str, capture: bool = False) -> str:
    cmd = [sys.executable, "-m", "samplecnn_cli", *args]
    print("$ samplecnn " + " ".join(args), file=sys.stderr, flush=True)
    done = subprocess.run(cmd, cwd=ROOT, check=True, text=True, stdout=subprocess.PIPE if capture else None)
    return done.stdout or ""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fsdd", type=Path, default=ROOT.parent / "shared" / "data" / "fsdd")
    parser.add_argument("--work", type=Path, default=Path("/tmp/samplecnn-fsdd"))
    parser.add_argument("--model", default="sample-3^7")
    parser.add_argument("--epochs", type=int, default=None, help="cap (default: the paper's schedule decides)")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--recipe", default="paper", help="train --recipe (default: the paper's, as documented)")
    args = parser.parse_args()
    if not (args.fsdd / "labels.csv").is_file():
        sys.exit(f"FSDD not found at {args.fsdd}")
    store, run = args.work / "store", args.work / "run"
    times = {}

    began = time.perf_counter()
    cli("preprocess", "folder", "--root", str(args.fsdd), "--sr", "8000", "--out", str(store))
    times["preprocess_seconds"] = round(time.perf_counter() - began, 1)

    began = time.perf_counter()
    train = ["train", args.model, "--data", str(store), "--out", str(run), "--precision", args.precision]
    if args.epochs:
        train += ["--epochs", str(args.epochs)]
    if (run / "config.toml").is_file():
        train.append("--resume")  # the run's own recipe, from its config
    else:
        train += ["--recipe", args.recipe]
    cli(*train)
    times["train_wall_seconds"] = round(time.perf_counter() - began, 1)

    began = time.perf_counter()
    metrics = json.loads(cli("evaluate", str(run), "--json", capture=True))
    times["evaluate_seconds"] = round(time.perf_counter() - began, 1)

    summary = json.loads((run / "summary.json").read_text())
    print(json.dumps({
        "model": args.model, "test_accuracy": metrics["accuracy"], "test_macro_f1": metrics["macro_f1"],
        "test_clips": metrics["clips"], "target": 0.97, "reached": metrics["accuracy"] >= 0.97,
        "epochs": summary["epochs"], "best_epoch": summary["best_epoch"], "stop_reason": summary["stop_reason"],
        "training_seconds": summary["total_seconds"], **times, "run": str(run),
    }, indent=2))


if __name__ == "__main__":
    main()
