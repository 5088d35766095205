"""`samplecnn similar`: the files of an embedding library closest to a query (inference/similar.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from samplecnn_cli.cli.console import console, current_context, err_console, print_csv, print_json


def similar(
    embeddings: Annotated[Path, typer.Argument(help="An embedding file written by `samplecnn embed`.")],
    queries: Annotated[list[Path], typer.Argument(help="Files of the library, or any audio files (embedded "
                                                  "through the run that wrote the library).")],
    top: Annotated[int, typer.Option("--top", "-k", help="How many similar files per query.")] = 10,
    device: Annotated[str, typer.Option("--device", help="auto, cpu or cuda (for queries outside the "
                                        "library).")] = "auto",
    workers: Annotated[int | None, typer.Option("--workers", "-j", help="Decoding processes for queries "
                                                "outside the library (0: none).")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON: per query its results.")] = False,
    csv_out: Annotated[bool, typer.Option("--csv", help="Print CSV: query,rank,similarity,path.")] = False,
) -> None:
    """Rank the library's files by cosine similarity of their embeddings to each QUERY, best first.

    A query that is a file of the library uses its stored embedding (and is left out of its own
    results); any other audio file is embedded through the run that wrote the library, with the same
    hop and precision."""
    from samplecnn_cli.core.errors import UsageError
    from samplecnn_cli.inference.similar import open_library
    from samplecnn_cli.inference.similar import similar as find_similar

    if json_out and csv_out:
        raise UsageError("--json and --csv both given", hint="choose one output form")
    library = open_library(embeddings)
    runtime = None
    if any(library.row_of(q) is None for q in queries):  # only then load torch and the model
        from samplecnn_cli.core.runtime import Runtime

        runtime = Runtime.resolve(device, str(library.attrs.get("precision", "fp32")))
    entries = find_similar(library, queries, top=top, runtime=runtime, workers=workers,
                           cache=current_context().inference_cache)
    if json_out:
        print_json(entries)
    elif csv_out:
        print_csv(["query", "rank", "similarity", "path"],
                  [[e["query"], r["rank"], f"{r['similarity']:.6f}", r["path"]] for e in entries
                   for r in e.get("results", [])])
    else:
        _print_tables(entries, len(library.paths))
    for entry in entries:
        if "error" in entry:
            err_console.print(f"[yellow]Skipped[/] {entry['query']}: {entry['error']}", highlight=False, soft_wrap=True)
    if all("error" in e for e in entries):
        raise typer.Exit(1)


def _print_tables(entries: list[dict], size: int) -> None:
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    for entry in entries:
        if "error" in entry:
            continue
        where = "a file of the library" if entry["in_library"] else "embedded through the library's run"
        console.print(f"[bold]{escape(entry['query'])}[/] ({where}), closest of {size:,} files:",
                      highlight=False, soft_wrap=True)
        table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
        table.add_column("#", justify="right", no_wrap=True)
        table.add_column("similarity", justify="right", no_wrap=True)
        table.add_column("path", overflow="fold")
        for r in entry["results"]:
            table.add_row(str(r["rank"]), f"{r['similarity']:.4f}", r["path"])
        console.print(table)
