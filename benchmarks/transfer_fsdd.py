"""Transfer from spoken digits to music/speech/silence, against training from scratch. Prints JSON.

    .venv/bin/python benchmarks/transfer_fsdd.py [--work /tmp/samplecnn-transfer] [--pretrain-epochs 4]
        [--pretrained RUN_DIR] [--seeds 0,1,2] [--scratch-epochs 30]

1. preprocess FSDD (../shared/data/fsdd, 8 kHz, official split) and train sample-3^7 on it with
   `samplecnn train` (the paper's recipe, capped at --pretrain-epochs), or reuse --pretrained RUN_DIR;
2. for each split seed: preprocess pyAudioAnalysis' 3-class set (120 one-second 8 kHz clips,
   music / speech / silence; `samplecnn preprocess folder` makes a stratified 80/10/10 split with
   that seed: 96 / 12 / 12 clips), then
   a. `samplecnn extract` (last three layers, max + avg) -> `samplecnn transfer` (4,096-unit MLP);
   b. `samplecnn train sample-3^7` from scratch on the same split (capped at --scratch-epochs);
   both evaluated on the same 12 test clips. With 12 test clips per seed, several seeds are pooled.
Rerunning with the same --work reuses finished steps.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


def cli(*args: str, capture: bool = False) -> str:
    print("$ samplecnn " + " ".join(args), file=sys.stderr, flush=True)
    done = subprocess.run([sys.executable, "-m", "samplecnn_cli", *args], cwd=ROOT, check=True, text=True,
                          stdout=subprocess.PIPE if capture else None)
    return done.stdout or ""


def timed(fn, *args, **kwargs):
    began = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, round(time.perf_counter() - began, 1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fsdd", type=Path, default=DATA / "fsdd")
    parser.add_argument("--target", type=Path, default=DATA / "pyaudioanalysis_3class")
    parser.add_argument("--work", type=Path, default=Path("/tmp/samplecnn-transfer"))
    parser.add_argument("--model", default="sample-3^7")
    parser.add_argument("--pretrain-epochs", type=int, default=4)
    parser.add_argument("--pretrained", type=Path, default=None, help="an FSDD run to reuse instead of training")
    parser.add_argument("--scratch-epochs", type=int, default=30)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--precision", default="auto")
    args = parser.parse_args()
    for folder in (args.fsdd, args.target):
        if not (folder / "labels.csv").is_file():
            sys.exit(f"no labels.csv in {folder}")
    work, times = args.work, {}

    # 1. the source model
    if args.pretrained:
        source = args.pretrained
    else:
        source = work / "fsdd-run"
        _, times["fsdd_preprocess_s"] = timed(cli, "preprocess", "folder", "--root", str(args.fsdd), "--sr", "8000",
                                              "--out", str(work / "fsdd-store"))
        if not (source / "summary.json").is_file():
            train = ["train", args.model, "--data", str(work / "fsdd-store"), "--out", str(source),
                     "--epochs", str(args.pretrain_epochs), "--precision", args.precision]
            if (source / "config.toml").is_file():
                train.append("--resume")
            _, times["fsdd_train_s"] = timed(cli, *train)
    source_metrics = json.loads(cli("evaluate", str(source), "--json", capture=True))

    # 2. per split seed: transfer vs scratch on the 3-class set
    rows = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        base = work / f"seed{seed}"
        store = base / "store"
        row = {"seed": seed}
        _, row["preprocess_s"] = timed(cli, "preprocess", "folder", "--root", str(args.target), "--sr", "8000",
                                       "--out", str(store), "--seed", str(seed))
        features = base / "features.h5"
        if not features.is_file():
            _, row["extract_s"] = timed(cli, "extract", str(source), "--data", str(store), "--out", str(features))
        transfer_dir = base / "transfer"
        if not (transfer_dir / "summary.json").is_file():
            _, row["transfer_wall_s"] = timed(cli, "transfer", str(features), "--out", str(transfer_dir), "--json",
                                              capture=True)
        scratch_dir = base / "scratch"
        if not (scratch_dir / "summary.json").is_file():
            _, row["scratch_wall_s"] = timed(cli, "train", args.model, "--data", str(store), "--out", str(scratch_dir),
                                             "--epochs", str(args.scratch_epochs), "--precision", args.precision,
                                             "--seed", str(seed))
        transfer = json.loads((transfer_dir / "metrics.json").read_text())
        scratch = json.loads(cli("evaluate", str(scratch_dir), "--json", capture=True))
        row.update(test_clips=transfer["clips"], transfer_accuracy=transfer["accuracy"],
                   scratch_accuracy=scratch["accuracy"],
                   transfer_train_s=json.loads((transfer_dir / "summary.json").read_text())["total_seconds"],
                   scratch_train_s=json.loads((scratch_dir / "summary.json").read_text()).get("total_seconds"))
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)

    clips = sum(r["test_clips"] for r in rows)
    print(json.dumps({
        "source": {"run": str(source), "model": args.model, "fsdd_test_accuracy": source_metrics["accuracy"],
                   "fsdd_test_clips": source_metrics["clips"], **times},
        "target": str(args.target), "per_seed": rows,
        "pooled_test_clips": clips,
        "transfer_accuracy": round(sum(r["transfer_accuracy"] * r["test_clips"] for r in rows) / clips, 4),
        "scratch_accuracy": round(sum(r["scratch_accuracy"] * r["test_clips"] for r in rows) / clips, 4),
    }, indent=2))


if __name__ == "__main__":
    main()
