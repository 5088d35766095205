"""`samplecnn extract`: song-level multi-level (and multi-scale) features of trained runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from samplecnn_cli.cli.console import console, current_context, err_console, print_json


def extract(
    run_dirs: Annotated[list[Path], typer.Argument(help="Trained run folders (several input sizes = multi-scale).")],
    data: Annotated[Path, typer.Option("--data", "-d", help="Target store folder (train/valid/test.h5).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Feature file to write (HDF5).")],
    layers: Annotated[str, typer.Option("--layers", "-l", help="Hidden layers, of -3,-2,-1.")] = "-3,-2,-1",
    pooling: Annotated[str, typer.Option("--pooling", help="Summaries over time: max, avg or both.")] = "max,avg",
    splits: Annotated[str | None, typer.Option("--splits", "-s", help="Splits to extract (default: all in the store).")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", help="Segments per forward pass.")] = 32,
    precision: Annotated[str, typer.Option("--precision", "-p", help="fp32, bf16 or auto.")] = "fp32",
    device: Annotated[str, typer.Option("--device", help="auto, cpu or cuda.")] = "auto",
    json_out: Annotated[bool, typer.Option("--json", help="Print a JSON summary.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Replace --out even when samplecnn did not write it "
                                        "(atomically).")] = False,
) -> None:
    """Song-level features: max- and average-pooled hidden layers of trained runs, one row per clip.

    Each run's model slides over every whole clip of the store (all non-overlapping segments); the
    chosen hidden layers are pooled over all segments and time and written with labels, clip ids and
    provenance (run, model, layer, pooling). Several runs with different input sizes = multi-scale."""
    from rich.progress import Progress

    from samplecnn_cli.core.runtime import Runtime
    from samplecnn_cli.data.features_file import POOLINGS, parse_layers, parse_names
    from samplecnn_cli.features.extract import extract_features

    _guard_out(run_dirs, data, out, force)
    layer_tuple = parse_layers(layers)
    poolings = parse_names(pooling, POOLINGS, "--pooling")
    split_names = parse_names(splits)
    with Progress(console=err_console, transient=True, disable=json_out or not err_console.is_terminal) as progress:
        tasks: dict[str, int] = {}

        def on_progress(split: str, done: int, total: int) -> None:
            if split not in tasks:
                tasks[split] = progress.add_task(f"extract {split}", total=total)
            progress.update(tasks[split], completed=done)

        summary = extract_features(run_dirs, data, out, Runtime.resolve(device, precision), layers=layer_tuple,
                                   poolings=poolings, splits=split_names, batch_size=batch_size,
                                   cache=current_context().inference_cache, on_progress=on_progress)
    if json_out:
        print_json(summary)
        return
    clips = ", ".join(f"{k} {v}" for k, v in summary["splits"].items())
    console.print(f"Wrote {summary['out']}: {summary['columns']} columns per clip ({clips} clips) from "
                  f"{len(summary['runs'])} run(s) in {summary['seconds']:.1f} s", highlight=False, soft_wrap=True)


def _guard_out(run_dirs: list[Path], data: Path, out: Path, force: bool) -> None:
    """--out must be a feature file (or new): never a store's split file, a checkpoint... unless --force."""
    from samplecnn_cli.core.outputs import guard_file
    from samplecnn_cli.runs.folder import RunDir

    inputs = [Path(data) / f"{split}.h5" for split in ("train", "valid", "test")]
    for run_dir in run_dirs:
        run = RunDir(Path(run_dir))
        inputs += [run.best, run.last, run.config]
    guard_file(out, own={"hdf5:samplecnn-features"}, force=force, inputs=inputs)
