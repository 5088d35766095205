"""`samplecnn tsne`: Figure 5, t-SNE of song-level features coloured by label."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from samplecnn_cli.cli.console import console, print_json


def tsne(
    features: Annotated[Path, typer.Argument(help="Feature file written by `samplecnn extract`.")],
    labels: Annotated[str, typer.Option("--labels", help="Comma-separated labels, e.g. piano,techno.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Figure to write (PNG or SVG); <stem>.json beside it.")],
    layer: Annotated[int, typer.Option("--layer", "-l", help="Hidden layer: -3, -2 or -1.")] = -3,
    split: Annotated[str, typer.Option("--split", help="Split whose clips are plotted.")] = "test",
    run: Annotated[str | None, typer.Option("--run", "-r", help="Run key or model name (default: the first run).")] = None,
    pooling: Annotated[str, typer.Option("--pooling", help="max, avg or both (concatenated).")] = "max,avg",
    perplexity: Annotated[float, typer.Option("--perplexity", help="t-SNE perplexity (lowered for few clips).")] = 30.0,
    seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 0,
    json_out: Annotated[bool, typer.Option("--json", help="Print the points as JSON.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Replace --out and its .json even when samplecnn did not "
                                        "write them (atomically).")] = False,
) -> None:
    """t-SNE of song-level features coloured by label (Figure 5 of the paper).

    Plots the clips carrying exactly one of the given labels; writes the figure and <stem>.json with
    one point per clip (clip_id, label, x, y)."""
    from samplecnn_cli.core.outputs import guard_files
    from samplecnn_cli.data.features_file import POOLINGS, parse_names
    from samplecnn_cli.features.tsne import tsne_plot

    guard_files([Path(out), Path(out).with_suffix(".json")], force=force)

    result = tsne_plot(features, out, layer=layer, labels=list(parse_names(labels) or ()), split=split, run=run,
                       poolings=parse_names(pooling, POOLINGS, "--pooling"), perplexity=perplexity, seed=seed)
    if json_out:
        print_json(result)
        return
    console.print(f"Wrote {result['figure']} and {result['json']} ({len(result['points'])} clips"
                  + (f"; {result['excluded_several']} with several of the labels left out" if result["excluded_several"] else "")
                  + ")", highlight=False, soft_wrap=True)
