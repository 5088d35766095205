"""`samplecnn embed`: per-file (and per-window) embeddings and multi-level features of audio files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from samplecnn_cli.cli import console, print_json


def embed(
    run_dir: Annotated[Path, typer.Argument(help="A run folder written by `samplecnn train`.")],
    paths: Annotated[list[Path], typer.Argument(help="Audio files or folders (walked for audio files).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="HDF5 file to write (layout: docs/inference.md).")],
    hop: Annotated[float | None, typer.Option("--hop", help="Seconds between window starts; also stores "
                                              "every window's embedding.")] = None,
    layers: Annotated[str, typer.Option("--layers", "-l", help="Hidden layers for multi-level features, of "
                                        "-3,-2,-1 ('' for none).")] = "-3,-2,-1",
    batch_size: Annotated[int | None, typer.Option("--batch-size", "-b", help="Windows per forward pass "
                                                   "(default: measured on this machine).")] = None,
    workers: Annotated[int | None, typer.Option("--workers", "-j", help="Decoding processes (0: none).")] = None,
    device: Annotated[str, typer.Option("--device", help="auto, cpu or cuda.")] = "auto",
    precision: Annotated[str, typer.Option("--precision", "-p", help="fp32, bf16 or auto.")] = "fp32",
    json_out: Annotated[bool, typer.Option("--json", help="Print a JSON summary.")] = False,
) -> None:
    """Embeddings of any folder of audio: per file the mean 512-d embedding and max/avg-pooled hidden
    layers (as `extract`), per window with --hop. Audio is resampled to the model's rate."""
    import time

    from samplecnn_cli import __version__, cli
    from samplecnn_cli.errors import DataError
    from samplecnn_cli.features.file import parse_layers
    from samplecnn_cli.inference.embeddings import POOLINGS, EmbeddingWriter
    from samplecnn_cli.inference.progress import file_progress
    from samplecnn_cli.tagging import build_engine, check_options, collect_files, load_waveform_run

    check_options(batch_size=batch_size, hop=hop, workers=workers)
    layer_tuple = parse_layers(layers) if layers.strip() else ()
    if layer_tuple is None:
        layer_tuple = (-3, -2, -1)
    files = collect_files(paths)
    if not files:
        raise DataError("no audio files found", hint="pass audio files or folders holding them")
    loaded = load_waveform_run(run_dir)
    want = ["embedding"] + (["window_embeddings"] if hop else []) + (["features"] if layer_tuple else [])
    engine, choice = build_engine(loaded, want=want, hop=hop, batch_size=batch_size, device=device,
                                  precision=precision, workers=workers)
    engine.layers = layer_tuple or engine.layers
    channels = _layer_channels(loaded.model, layer_tuple)
    rate = engine.rate
    attrs = {"run": str(Path(run_dir).resolve()), "model": loaded.model_name,
             "input_samples": int(loaded.model.input_samples), "sample_rate": rate,
             "window_seconds": loaded.model.input_samples / rate, "hop_seconds": engine.hop / rate,
             "layers": json.dumps(list(layer_tuple)), "poolings": json.dumps(list(POOLINGS)),
             "backend": choice.backend, "precision": choice.precision,
             "label_names": json.dumps(loaded.label_names), "samplecnn_version": __version__}
    writer = EmbeddingWriter(out, attrs=attrs, layer_channels=channels, windows=bool(hop))
    started = time.perf_counter()
    audio = 0.0
    try:
        with file_progress("embed", quiet=json_out, console=cli.err_console) as (on_start, on_file):
            on_start(len(files))
            for r in engine.run(files):
                writer.add(r)
                audio += r.seconds
                on_file(r)
        writer.finish()
    except BaseException:
        writer.abort()
        raise
    seconds = time.perf_counter() - started
    summary = {"out": str(out), "files": writer.rows, "failed": len(writer.failed), "feature_columns": writer.width,
               "audio_seconds": round(audio, 3), "seconds": round(seconds, 3),
               "realtime": round(audio / seconds, 1) if seconds else None, "backend": choice.backend,
               "precision": choice.precision, "batch_size": choice.batch_size}
    if json_out:
        print_json(summary)
    else:
        console.print(f"Wrote {out}: {writer.rows} files ({writer.width} feature columns), {len(writer.failed)} "
                      f"failed, {audio / seconds if seconds else 0:.0f}x realtime", highlight=False, soft_wrap=True)
    if writer.failed and not writer.rows:
        raise typer.Exit(1)


def _layer_channels(model, layers: tuple[int, ...]) -> dict[int, int]:
    import torch

    with torch.no_grad():
        hidden = model.eval().forward_all(torch.zeros(1, model.input_samples)).hidden
    return {layer: int(hidden[layer].shape[1]) for layer in sorted(layers)}
