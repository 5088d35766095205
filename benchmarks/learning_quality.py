"""Learning quality on real data, through the CLI: N seeds per dataset and precision, test accuracy mean ± std.

    .venv/bin/python benchmarks/learning_quality.py [--seeds 0,1,2] [--precisions auto,fp32]
        [--datasets philharmonia,fsdd] [--work /tmp/samplecnn-lq] [--train-args "--recipe paper"]

Datasets (read from ../shared/data; never copied into the project):
- philharmonia: the Philharmonia stand-in (16 instruments, 852 train / 268 test MP3 clips; `preprocess folder`
  carves a stratified 10% of train as validation), 8 kHz, sample-3-3-3-3-2-2-4-4-2-2, 15 epochs.
- fsdd: Free Spoken Digit Dataset (official split, 2,700 train / 300 test), 8 kHz, sample-3^7, 10 epochs.
Every choice is made on validation data inside `samplecnn train`; test is evaluated once per finished run.
A rerun with the same --work reuses finished runs. Prints one JSON object; `samplecnn report` over all runs
(training curves, confusion matrices) is written to WORK/report.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
DATASETS = {
    "philharmonia": {"root": DATA / "philharmonia_public", "model": "sample-3-3-3-3-2-2-4-4-2-2", "epochs": 15,
                     "plain_script": 0.664},
    "fsdd": {"root": DATA / "fsdd", "model": "sample-3^7", "epochs": 10, "target": 0.97},
}


def cli(*args: str, capture: bool = False) -> str:
    print("$ samplecnn " + shlex.join(args), file=sys.stderr, flush=True)
    done = subprocess.run([sys.executable, "-m", "samplecnn_cli", *args], cwd=ROOT, check=True, text=True,
                          stdout=subprocess.PIPE if capture else sys.stderr)  # stdout: the JSON alone
    return done.stdout or ""


def cpu_kind() -> str:
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    forced = os.environ.get("ONEDNN_MAX_CPU_ISA", "")
    if "avx512_bf16" in flags and not forced.upper().startswith("AVX2"):
        return "avx512-bf16"
    return "avx2 (forced by ONEDNN_MAX_CPU_ISA)" if forced else ("avx512" if "avx512f" in flags else "avx2")


def train_and_test(store: Path, run: Path, spec: dict, seed: int, precision: str, extra: list[str]) -> dict:
    if not (run / "summary.json").is_file():
        args = ["train", spec["model"], "--data", str(store), "--out", str(run), "--epochs", str(spec["epochs"]),
                "--seed", str(seed), "--precision", precision, *extra]
        cli(*args, *(["--resume"] if (run / "checkpoints" / "last.pt").is_file() else []))
    metrics = json.loads(cli("evaluate", str(run), "--split", "test", "--json", capture=True))
    summary = json.loads((run / "summary.json").read_text())
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    ratios = [r["valid_loss"] / r["train_loss"] for r in rows if r.get("train_loss")]
    return {"seed": seed, "test_accuracy": metrics["accuracy"], "epochs": summary.get("epochs"),
            "minutes": round(summary["total_seconds"] / 60, 2), "max_valid_over_train_loss": round(max(ratios), 2),
            "precision": json.loads((run / "env.json").read_text()).get("precision"), "run": str(run)}


def summarise(results: list[dict]) -> dict:
    accs = [r["test_accuracy"] for r in results]
    mins = [r["minutes"] for r in results]
    return {"test_accuracy_mean": round(statistics.mean(accs), 4),
            "test_accuracy_std": round(statistics.stdev(accs), 4) if len(accs) > 1 else 0.0,
            "minutes_mean": round(statistics.mean(mins), 2), "minutes_max": round(max(mins), 2), "runs": results}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--precisions", default="auto")
    parser.add_argument("--datasets", default="philharmonia,fsdd")
    parser.add_argument("--work", type=Path, default=Path("/tmp/samplecnn-lq"))
    parser.add_argument("--train-args", default="", help="extra `samplecnn train` options, e.g. '--recipe paper'")
    parser.add_argument("--no-report", action="store_true")
    args = parser.parse_args()
    extra = shlex.split(args.train_args)
    out = {"cpu": cpu_kind(), "train_args": extra, "load_before": os.getloadavg()[0], "results": {}}
    all_runs = []
    for name in args.datasets.split(","):
        spec = DATASETS[name]
        if not (spec["root"] / "labels.csv").is_file():
            out["results"][name] = {"skipped": f"{spec['root']} not found"}
            continue
        store = args.work / name / "store"
        if not (store / "train.h5").is_file():
            cli("preprocess", "folder", "--root", str(spec["root"]), "--sr", "8000", "--out", str(store))
        for precision in args.precisions.split(","):
            began = time.perf_counter()
            results = [train_and_test(store, args.work / name / f"{precision}-seed{seed}", spec, int(seed),
                                      precision, extra) for seed in args.seeds.split(",")]
            all_runs += [r["run"] for r in results]
            out["results"][f"{name}/{precision}"] = {"model": spec["model"], "epochs": spec["epochs"],
                                                     **summarise(results),
                                                     "wall_minutes": round((time.perf_counter() - began) / 60, 2),
                                                     **{k: spec[k] for k in ("plain_script", "target") if k in spec}}
    out["load_after"] = os.getloadavg()[0]
    if all_runs and not args.no_report:
        cli("report", *all_runs, "--out", str(args.work / "report"), "--title", "Learning quality")
        out["report"] = str(args.work / "report")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
