"""Training and inference throughput of samplecnn's code path vs the plain fp32 eager PyTorch model.

    .venv/bin/python benchmarks/bench_train_infer.py [--model sample-3^9] [--batch-size 23] [--steps 4]

For each of train and infer: samplecnn_cli.bench.throughput.bench_vs_plain, i.e. what `samplecnn bench train|infer
--compare` prints. Each round times the plain model in a fresh process with the system allocator (a
user's own script), the plain model in this process (with memory.py's allocator settings, applied
here first as the CLI does), and ours (train_step / the shared inference path, precision auto);
medians of --rounds rounds. Prints JSON.
"""

from __future__ import annotations

import argparse
import json

from samplecnn_cli.core.context import Context

CONTEXT = Context.from_environment()
CONTEXT.apply()  # the allocator policy, before torch loads, as the CLI's main does

from samplecnn_cli.bench.throughput import bench_vs_plain  # noqa: E402
from samplecnn_cli.core.runtime import Runtime  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="sample-3^9")
    parser.add_argument("--batch-size", type=int, default=23)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--precision", default="auto")
    args = parser.parse_args()
    runtime = Runtime.resolve("cpu", args.precision)
    out = {mode: bench_vs_plain(mode, args.model, runtime, batch_size=args.batch_size, rounds=args.rounds,
                                steps=args.steps if mode == "train" else 3 * args.steps,
                                cache=CONTEXT.inference_cache)
           for mode in ("train", "infer")}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
