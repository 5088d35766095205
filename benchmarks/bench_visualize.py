"""Time gradient-ascent filter visualisation: all filters of a layer in one batch (Section 7.1 settings).

    python benchmarks/bench_visualize.py [--model sample-3^9] [--layers 1-4] [--steps 18] [--input-samples 729]

Prints JSON: per layer the filters, input samples, seconds, filters per second; plus threads and the
machine's load average at the start. Wall seconds are only comparable on an idle machine; cpu_seconds
(process CPU time, all threads) divided by the threads is roughly the idle wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    import torch

    from samplecnn_cli.models.registry import create_model
    from samplecnn_cli.viz import filters as F

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="sample-3^9")
    parser.add_argument("--layers", default="1-4")
    parser.add_argument("--steps", type=int, default=F.DEFAULT_STEPS)
    parser.add_argument("--input-samples", type=int, default=F.DEFAULT_INPUT_SAMPLES)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    model = create_model(args.model).eval()  # random weights: the cost does not depend on training
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    rows = []
    for layer in F.parse_layers(args.layers, F.num_conv_layers(model)):
        if layer == 1 and not F.has_learned_front(model):
            continue
        began, cpu_began = time.perf_counter(), time.process_time()
        result = F.gradient_ascent(model, layer, input_samples=args.input_samples, steps=args.steps, seed=args.seed)
        seconds = time.perf_counter() - began
        cpu_seconds = time.process_time() - cpu_began  # less sensitive to other processes than wall time
        rows.append({"layer": layer, "filters": len(result.filters), "input_samples": result.input_samples,
                     "seconds": round(seconds, 2), "cpu_seconds": round(cpu_seconds, 2), "filters_per_second": round(len(result.filters) / seconds, 1)})
    print(json.dumps({"model": args.model, "steps": args.steps, "torch_threads": torch.get_num_threads(),
                      "cpu_count": os.cpu_count(), "load_average_1min": load, "layers": rows}, indent=2))


if __name__ == "__main__":
    main()
