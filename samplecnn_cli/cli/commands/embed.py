"""`samplecnn embed`: per-file (and per-window) embeddings and multi-level features of audio files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from samplecnn_cli.cli.console import console, current_context, print_json

HopOpt = Annotated[float | None, typer.Option("--hop", help="Seconds between window starts; also stores "
                                              "every window's embedding.")]
LayersOpt = Annotated[str, typer.Option("--layers", "-l", help="Hidden layers for multi-level features, of "
                                        "-3,-2,-1 ('' for none).")]
BatchSizeOpt = Annotated[int | None, typer.Option("--batch-size", "-b", help="Windows per forward pass "
                                                  "(default: measured on this machine).")]


def embed(
    run_dir: Annotated[Path, typer.Argument(help="A run folder written by `samplecnn train`.")],
    paths: Annotated[list[Path], typer.Argument(help="Audio files or folders (walked for audio files).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="HDF5 file to write (layout: docs/inference.md).")],
    hop: HopOpt = None,
    layers: LayersOpt = "-3,-2,-1",
    batch_size: BatchSizeOpt = None,
    workers: Annotated[int | None, typer.Option("--workers", "-j", help="Decoding processes (0: none).")] = None,
    device: Annotated[str, typer.Option("--device", help="auto, cpu or cuda.")] = "auto",
    precision: Annotated[str, typer.Option("--precision", "-p", help="fp32, bf16 or auto.")] = "fp32",
    json_out: Annotated[bool, typer.Option("--json", help="Print a JSON summary.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Replace --out even when samplecnn did not write it "
                                        "(atomically).")] = False,
) -> None:
    """Embeddings of any folder of audio: per file the mean 512-d embedding and max/avg-pooled hidden
    layers (as `extract`), per window with --hop. Audio is resampled to the model's rate."""
    from samplecnn_cli.cli import console as cli
    from samplecnn_cli.core.errors import DataError
    from samplecnn_cli.core.runtime import Runtime
    from samplecnn_cli.data.features_file import parse_layers
    from samplecnn_cli.inference.library import (
        check_options,
        collect_files,
        embed_to_file,
        load_library_model,
    )
    from samplecnn_cli.inference.progress import file_progress

    check_options(batch_size=batch_size, hop=hop, workers=workers)
    layer_tuple = parse_layers(layers) if layers.strip() else ()
    if layer_tuple is None:
        layer_tuple = (-3, -2, -1)
    files = collect_files(paths)
    if not files:
        raise DataError("no audio files found", hint="pass audio files or folders holding them")
    target = _guard_out(run_dir, files, out, force)
    model = load_library_model(run_dir, Runtime.resolve(device, precision), batch_size=batch_size,
                               cache=current_context().inference_cache)
    with file_progress("embed", quiet=json_out, console=cli.err_console) as (on_start, on_file):
        summary = embed_to_file(model, files, out, hop=hop, layers=layer_tuple, workers=workers,
                                on_start=on_start, on_file=on_file, replace=force and target.exists)
    if json_out:
        print_json(summary)
    else:
        realtime = summary["realtime"] or 0
        console.print(f"Wrote {out}: {summary['files']} files ({summary['feature_columns']} feature columns), "
                      f"{summary['failed']} failed, {realtime:.0f}x realtime", highlight=False, soft_wrap=True)
    if summary["failed"] and not summary["files"]:
        raise typer.Exit(1)


def _guard_out(run_dir: Path, files: list[Path], out: Path, force: bool):
    """--out must be an embedding file (or new): never an input, a store, a checkpoint... unless --force."""
    from samplecnn_cli.core.outputs import guard_file
    from samplecnn_cli.runs.folder import RunDir

    run = RunDir(Path(run_dir))
    return guard_file(out, own={"hdf5:samplecnn-embeddings"}, force=force,
                      inputs=[*files, run.best, run.last, run.config])
