"""`samplecnn bench train|infer`: throughput of the code paths train and tag run (a thin wrapper over bench)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from samplecnn_cli.cli.console import App, console, current_context, print_json

app = App(help="Measure training, inference and data-loading throughput (segments per second).")

ModelArg = Annotated[str, typer.Argument(help="Model name, e.g. 'sample-3^9'.")]
BatchOpt = Annotated[int, typer.Option("--batch-size", "-b", help="Segments per step.")]
PrecisionOpt = Annotated[str, typer.Option("--precision", "-p", help="fp32, bf16, fp16 (CUDA) or auto.")]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto, cpu or cuda.")]
StepsOpt = Annotated[int, typer.Option("--steps", "-n", help="Timed steps (after one warm-up step).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _run(mode, model, batch_size, precision, device, steps, json_out) -> None:
    from samplecnn_cli.bench.throughput import bench
    from samplecnn_cli.core.runtime import Runtime

    result = bench(mode, model, Runtime.resolve(device, precision), batch_size=batch_size, steps=steps,
                   cache=current_context().inference_cache)
    if json_out:
        print_json(result)
        return
    console.print(f"{mode} {result['model']}: [bold]{result['segments_per_second']:,.1f} segments/s[/] "
                  f"(batch {result['batch_size']}, {result['precision']}, {result['device']}, "
                  f"{result['threads']} threads, {result['seconds_per_step'] * 1000:,.0f} ms/step)", highlight=False)


CompareOpt = Annotated[bool, typer.Option("--compare", help="Also time the plain fp32 eager model (in a fresh "
                                          "process with the system allocator, and in this one), interleaved "
                                          "with ours on the CPU, and print the ratios.")]


def _compare(mode, model, batch_size, precision, steps, json_out) -> None:
    from samplecnn_cli.bench.throughput import bench_vs_plain
    from samplecnn_cli.core.runtime import Runtime

    result = bench_vs_plain(mode, model, Runtime.resolve("cpu", precision), batch_size=batch_size,
                            steps=max(1, steps // 2), cache=current_context().inference_cache)
    if json_out:
        print_json(result)
        return
    score = (f", max score difference {result['max_score_difference']:.1e}"
             if "max_score_difference" in result else "")
    console.print(f"{mode} {result['model']}: ours {result['ours_segments_per_second']:,.1f} segments/s "
                  f"({result.get('backend', 'eager')} {result['precision']}) vs plain fp32 eager "
                  f"{result['plain_fp32_segments_per_second']:,.1f}: [bold]{result['speedup']:.2f}x[/] "
                  f"({result['speedup_same_allocator']:.2f}x against the plain model with our allocator "
                  f"settings; batch {result['batch_size']}, {result['threads']} threads{score})", highlight=False)


@app.command("train")
def bench_train(model: ModelArg, batch_size: BatchOpt = 23, precision: PrecisionOpt = "auto",
                device: DeviceOpt = "auto", steps: StepsOpt = 5, json_out: JsonOpt = False,
                compare: CompareOpt = False) -> None:
    """Training throughput: the optimizer step `samplecnn train` runs."""
    if compare:
        _compare("train", model, batch_size, precision, steps, json_out)
        return
    _run("train", model, batch_size, precision, device, steps, json_out)


@app.command("infer")
def bench_infer(model: ModelArg, batch_size: BatchOpt = 23, precision: PrecisionOpt = "auto",
                device: DeviceOpt = "auto", steps: StepsOpt = 5, json_out: JsonOpt = False,
                compare: CompareOpt = False) -> None:
    """Inference throughput: the batched prediction `samplecnn evaluate`, `tag`, `embed` and `extract` run
    (batch norm folded, the fastest backend measured on this machine)."""
    if compare:
        _compare("infer", model, batch_size, precision, steps, json_out)
        return
    _run("infer", model, batch_size, precision, device, steps, json_out)


@app.command("data")
def bench_data(
    store: Annotated[Path, typer.Argument(help="A preprocessed store folder.")],
    workers: Annotated[str, typer.Option("--workers", "-w", help="Worker counts to measure, comma-separated.")] = "0,1,2",
    batch_size: BatchOpt = 23,
    samples: Annotated[int, typer.Option("--samples", help="Samples per segment (59,049 = sample-3^9).")] = 59049,
    batches: Annotated[int, typer.Option("--batches", "-n", help="Timed batches per worker count.")] = 100,
    json_out: JsonOpt = False,
) -> None:
    """Data throughput: segments per second the training loader delivers from STORE's train split, per
    number of DataLoader workers."""
    from samplecnn_cli.bench.throughput import bench_data as run_bench
    from samplecnn_cli.core.errors import UsageError

    try:
        counts = tuple(int(w) for w in workers.split(",") if w.strip())
    except ValueError:
        raise UsageError(f"--workers takes comma-separated counts, not '{workers}'") from None
    result = run_bench(store, workers=counts, batch_size=batch_size, input_samples=samples, batches=batches)
    if json_out:
        print_json(result)
        return
    for row in result["results"]:
        console.print(f"data {result['store']}: [bold]{row['segments_per_second']:,.0f} segments/s[/] with "
                      f"{row['workers']} worker(s) ({row['mb_per_second']:,.0f} MB/s of int16, "
                      f"{samples:,}-sample segments, batch {batch_size})", highlight=False)
