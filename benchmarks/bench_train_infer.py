"""Training and inference throughput of samplecnn's code path vs a plain fp32 eager PyTorch loop.

    .venv/bin/python benchmarks/bench_train_infer.py [--model sample-3^9] [--batch-size 23] [--steps 4]

Both sides use the same SampleCNN 3^9 at batch 23 and run alternately (the machine may be shared, so
each side is measured `--rounds` times and the median is kept). "ours" is samplecnn_cli.bench.bench,
i.e. train_step and the shared inference path (samplecnn_cli.inference) `train`, `evaluate` and `tag` run, with
precision auto (bf16 autocast where the CPU has native bf16). Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from samplecnn_cli.bench import bench
from samplecnn_cli.registry import create_model


def plain(mode: str, model_name: str, batch_size: int, steps: int) -> float:
    """The baseline: fp32, eager, no autocast, torch.no_grad for inference."""
    torch.manual_seed(0)
    model = create_model(model_name, num_outputs=50)
    x = torch.randn(batch_size, model.input_samples) * 0.1
    y = torch.zeros(batch_size, 50)
    y[:, 0] = 1
    if mode == "train":
        model.train()
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)
        loss_fn = torch.nn.BCEWithLogitsLoss()

        def step():
            opt.zero_grad()
            loss_fn(model(x), y).backward()
            opt.step()
    else:
        model.eval()

        def step():
            with torch.no_grad():
                torch.sigmoid(model(x))
    step()
    began = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * batch_size / (time.perf_counter() - began)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="sample-3^9")
    parser.add_argument("--batch-size", type=int, default=23)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--precision", default="auto")
    args = parser.parse_args()
    out = {"model": args.model, "batch_size": args.batch_size, "threads": torch.get_num_threads(),
           "torch": torch.__version__}
    for mode in ("train", "infer"):
        steps = args.steps if mode == "train" else args.steps * 3
        base, ours, precision = [], [], None
        for _ in range(args.rounds):
            base.append(plain(mode, args.model, args.batch_size, steps))
            result = bench(mode, args.model, batch_size=args.batch_size, precision=args.precision, steps=steps)
            ours.append(result["segments_per_second"])
            precision = result["precision"]
        out[mode] = {"plain_fp32_segments_per_second": round(statistics.median(base), 2),
                     "ours_segments_per_second": round(statistics.median(ours), 2), "ours_precision": precision,
                     "speedup": round(statistics.median(ours) / statistics.median(base), 2),
                     "plain_all": [round(v, 2) for v in base], "ours_all": ours}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
