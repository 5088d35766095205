"""Learning quality on real data, through the CLI: N seeds per dataset and precision, test metric mean ± std,
beside a plain 40-line AdamW loop of the same layers on the same store, seeds and epochs (plain_loop.py).

    .venv/bin/python benchmarks/learning_quality.py [--seeds 0,1,2] [--precisions auto,fp32]
        [--datasets philharmonia,fsdd] [--work /tmp/samplecnn-lq] [--train-args "--recipe paper"]
        [--labels labels-multilabel.csv] [--loops toolkit,plain] [--epochs 30]

Datasets (read from ../shared/data; never copied into the project):
- philharmonia: the Philharmonia stand-in (16 instruments, 852 train / 268 test MP3 clips; `preprocess folder`
  carves a stratified 10% of train as validation), 8 kHz, sample-3-3-3-3-2-2-4-4-2-2, 15 epochs.
- fsdd: Free Spoken Digit Dataset (official split, 2,700 train / 300 test), 8 kHz, sample-3^7, 10 epochs.
Every choice is made on validation data inside `samplecnn train`; test is evaluated once per finished run, as
the run trained (`evaluate`'s default; bf16 autocast under `auto` on a CPU with bf16 units, like the plain loop's
test) and, beside it, in fp32 (`test_accuracy_fp32`, both loops).
The metric is test accuracy for a single-label labels file, macro ROC-AUC for a multi-label one
(`--labels labels-multilabel.csv`: the Philharmonia stand-in's 29 tags; its runs go to WORK/philharmonia-
labels-multilabel). The plain loop (benchmarks/plain_loop.py: AdamW 1e-3, weight decay 0.01, cosine, batch
23, grid segments of train + valid, the last epoch's weights) runs on the same store; `--loops toolkit` or
`--loops plain` runs one side. `--epochs N` sets the length of every run (the default recipe's own is 30;
its runs go to their own folders). A rerun with the same --work reuses finished runs (and plain-loop results). Prints one JSON object; `samplecnn report` over all runs
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
    """A toolkit run (trained unless finished) and its test metric."""
    if not (run / "summary.json").is_file():
        args = ["train", spec["model"], "--data", str(store), "--out", str(run), "--epochs", str(spec["epochs"]),
                "--seed", str(seed), "--precision", precision, *extra]
        cli(*args, *(["--resume"] if (run / "checkpoints" / "last.pt").is_file() else []))
    fp32 = json.loads(cli("evaluate", str(run), "--split", "test", "--precision", "fp32", "--json", capture=True))
    metrics = json.loads(cli("evaluate", str(run), "--split", "test", "--json", capture=True))  # as trained; last,
    summary = json.loads((run / "summary.json").read_text())  # so metrics.json (the report's) holds this view
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    ratios = [r["valid_loss"] / r["train_loss"] for r in rows if r.get("train_loss")]
    name = "accuracy" if metrics.get("task") == "multiclass" else "roc_auc"
    return {"seed": seed, f"test_{name}": metrics[name], f"test_{name}_fp32": fp32[name], "epochs": summary.get("epochs"),
            "best_epoch": summary.get("best_epoch"),
            "minutes": round(summary["total_seconds"] / 60, 2), "max_valid_over_train_loss": round(max(ratios), 2),
            "precision": json.loads((run / "env.json").read_text()).get("precision"), "run": str(run)}


def plain_loop(store: Path, out: Path, spec: dict, seed: int, precision: str) -> dict:
    """The plain loop's result on `store` (run unless `out` holds it already)."""
    if not out.is_file():
        args = [sys.executable, str(ROOT / "benchmarks" / "plain_loop.py"), str(store), "--seed", str(seed),
                "--epochs", str(spec["epochs"]), "--precision", precision]
        print("$ " + shlex.join(args[1:]), file=sys.stderr, flush=True)
        done = subprocess.run(args, check=True, text=True, stdout=subprocess.PIPE)
        out.write_text(done.stdout)
    return {**json.loads(out.read_text()), "result": str(out)}


def metric_name(results: list[dict]) -> str:
    return "test_accuracy" if "test_accuracy" in results[0] else "test_roc_auc"


def summarise(results: list[dict]) -> dict:
    name = metric_name(results)
    accs = [r[name] for r in results]
    mins = [r["minutes"] for r in results]
    fp32 = {f"{name}_fp32_mean": round(statistics.mean(r[f"{name}_fp32"] for r in results), 4)
            } if all(f"{name}_fp32" in r for r in results) else {}
    return {f"{name}_mean": round(statistics.mean(accs), 4),
            f"{name}_std": round(statistics.stdev(accs), 4) if len(accs) > 1 else 0.0, **fp32,
            "minutes_mean": round(statistics.mean(mins), 2), "minutes_max": round(max(mins), 2), "runs": results}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--precisions", default="auto")
    parser.add_argument("--datasets", default="philharmonia,fsdd")
    parser.add_argument("--work", type=Path, default=Path("/tmp/samplecnn-lq"))
    parser.add_argument("--train-args", default="", help="extra `samplecnn train` options, e.g. '--recipe paper'")
    parser.add_argument("--labels", default="labels.csv", help="the dataset's labels file (philharmonia: "
                        "labels.csv, single-label, or labels-multilabel.csv, 29 tags)")
    parser.add_argument("--loops", default="toolkit,plain", help="toolkit (samplecnn train), plain "
                        "(benchmarks/plain_loop.py) or both")
    parser.add_argument("--epochs", type=int, default=None, help="epochs for every dataset (default: each "
                        "dataset's own, 15 and 10; the default recipe's own length is 30)")
    parser.add_argument("--no-report", action="store_true")
    args = parser.parse_args()
    extra = shlex.split(args.train_args)
    loops = args.loops.split(",")
    out = {"cpu": cpu_kind(), "train_args": extra, "load_before": os.getloadavg()[0], "results": {}}
    all_runs = []
    for dataset in args.datasets.split(","):
        spec = {**DATASETS[dataset], **({"epochs": args.epochs} if args.epochs else {})}
        length = f"-e{args.epochs}" if args.epochs else ""  # runs of another length in their own folders
        labels = spec["root"] / args.labels
        if not labels.is_file():
            out["results"][dataset] = {"skipped": f"{labels} not found"}
            continue
        name = dataset if args.labels == "labels.csv" else f"{dataset}-{labels.stem}"
        store = args.work / name / "store"
        if not (store / "train.h5").is_file():
            cli("preprocess", "folder", "--root", str(spec["root"]), "--labels", str(labels), "--sr", "8000",
                "--out", str(store))
        for precision in args.precisions.split(","):
            began = time.perf_counter()
            seeds = [int(seed) for seed in args.seeds.split(",")]
            entry = {"model": spec["model"], "epochs": spec["epochs"], "labels": args.labels}
            if "toolkit" in loops:
                results = [train_and_test(store, args.work / name / f"{precision}{length}-seed{seed}", spec, seed,
                                          precision, extra) for seed in seeds]
                all_runs += [r["run"] for r in results]
                entry.update(summarise(results))
            if "plain" in loops:
                plain = [plain_loop(store, args.work / name / f"plain-{precision}{length}-seed{seed}.json", spec, seed,
                                    precision) for seed in seeds]
                entry["plain_loop"] = summarise(plain)
                if "toolkit" in loops:
                    metric = metric_name(plain)
                    entry["toolkit_minus_plain"] = round(entry[f"{metric}_mean"] - entry["plain_loop"][f"{metric}_mean"], 4)
            entry["wall_minutes"] = round((time.perf_counter() - began) / 60, 2)
            out["results"][f"{name}/{precision}"] = {**entry, **{k: spec[k] for k in ("plain_script", "target")
                                                                  if k in spec}}
    out["load_after"] = os.getloadavg()[0]
    if all_runs and not args.no_report:
        cli("report", *all_runs, "--out", str(args.work / "report"), "--title", "Learning quality")
        out["report"] = str(args.work / "report")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
