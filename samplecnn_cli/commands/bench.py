"""`samplecnn bench train|infer`: throughput of the code paths train and tag run (a thin wrapper over bench)."""

from __future__ import annotations

from typing import Annotated

import typer

from samplecnn_cli.cli import App, console, print_json

app = App(help="Measure training and inference throughput (segments per second).")

ModelArg = Annotated[str, typer.Argument(help="Model name, e.g. 'sample-3^9'.")]
BatchOpt = Annotated[int, typer.Option("--batch-size", "-b", help="Segments per step.")]
PrecisionOpt = Annotated[str, typer.Option("--precision", "-p", help="fp32, bf16, fp16 (CUDA) or auto.")]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto, cpu or cuda.")]
StepsOpt = Annotated[int, typer.Option("--steps", "-n", help="Timed steps (after one warm-up step).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _run(mode, model, batch_size, precision, device, steps, json_out) -> None:
    from samplecnn_cli.bench import bench

    result = bench(mode, model, batch_size=batch_size, precision=precision, device=device, steps=steps)
    if json_out:
        print_json(result)
        return
    console.print(f"{mode} {result['model']}: [bold]{result['segments_per_second']:,.1f} segments/s[/] "
                  f"(batch {result['batch_size']}, {result['precision']}, {result['device']}, "
                  f"{result['threads']} threads, {result['seconds_per_step'] * 1000:,.0f} ms/step)", highlight=False)


@app.command("train")
def bench_train(model: ModelArg, batch_size: BatchOpt = 23, precision: PrecisionOpt = "auto",
                device: DeviceOpt = "auto", steps: StepsOpt = 5, json_out: JsonOpt = False) -> None:
    """Training throughput: the optimizer step `samplecnn train` runs."""
    _run("train", model, batch_size, precision, device, steps, json_out)


@app.command("infer")
def bench_infer(model: ModelArg, batch_size: BatchOpt = 23, precision: PrecisionOpt = "auto",
                device: DeviceOpt = "auto", steps: StepsOpt = 5, json_out: JsonOpt = False) -> None:
    """Inference throughput: the batched prediction `samplecnn evaluate` and `samplecnn tag` run."""
    _run("infer", model, batch_size, precision, device, steps, json_out)
