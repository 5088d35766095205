"""`samplecnn tag`: the top labels of audio files by a trained run (a thin wrapper over tagging.tag_files)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from samplecnn_cli.cli import console, err_console, print_json


def tag(
    run_dir: Annotated[Path, typer.Argument(help="A run folder written by `samplecnn train`.")],
    paths: Annotated[list[Path], typer.Argument(help="Audio files or folders (walked for audio files).")],
    top_k: Annotated[int, typer.Option("--top-k", "-k", help="How many labels to show per file.")] = 5,
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", help="Segments per forward pass.")] = 64,
    device: Annotated[str, typer.Option("--device", help="auto, cpu or cuda.")] = "auto",
    precision: Annotated[str, typer.Option("--precision", "-p", help="fp32, bf16, fp16 or auto.")] = "auto",
    json_out: Annotated[bool, typer.Option("--json", help="Print a JSON list, one object per file.")] = False,
) -> None:
    """Tag audio files: decode, resample to the model's rate, average the model over all segments,
    print the top-k labels with their scores. Unreadable files are reported; the rest continue."""
    from samplecnn_cli.errors import DataError
    from samplecnn_cli.tagging import tag_files

    results = tag_files(run_dir, paths, top_k=top_k, batch_size=batch_size, device=device, precision=precision)
    if not results:
        raise DataError("no audio files found", hint="pass audio files or folders holding them")
    failed = [r for r in results if "error" in r]
    if json_out:
        print_json(results)
    else:
        _print_table(results, top_k)
    for r in failed:
        err_console.print(f"[yellow]Skipped[/] {r['path']}: {r['error']}", highlight=False, soft_wrap=True)
    if len(failed) == len(results):
        raise typer.Exit(1)


def _print_table(results: list[dict], top_k: int) -> None:
    from rich.table import Table

    table = Table(title_justify="left")
    table.add_column("file", overflow="fold")
    table.add_column("seconds", justify="right")
    for i in range(top_k):
        table.add_column(f"#{i + 1}")
    for r in results:
        if "error" in r:
            continue
        cells = [f"{t['label']} {t['score']:.3f}" for t in r["top"]]
        table.add_row(r["path"], f"{r['seconds']:.1f}", *cells, *[""] * (top_k - len(cells)))
    console.print(table)
