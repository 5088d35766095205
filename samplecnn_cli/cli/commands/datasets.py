"""`samplecnn datasets`: list dataset adapters, describe a store, make the toy dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from samplecnn_cli.cli.console import App, console, print_json

app = App(help="Datasets: list the adapters, describe a preprocessed store, generate the toy dataset.")


@app.command("list")
def list_datasets(json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """The datasets `samplecnn preprocess` knows (built-ins and `samplecnn.datasets` plugins)."""
    from rich.table import Table

    from samplecnn_cli.data.datasets import list_adapters

    rows = list_adapters()
    if json_out:
        print_json(rows)
        return
    table = Table("name", "task", "clip", "description", box=None)
    for row in rows:
        clip = f"{row['clip_seconds']} s" if row["clip_seconds"] else "whole"
        table.add_row(row["name"], row["task"], clip, row["description"])
    console.print(table)


@app.command("info")
def info(
    store: Annotated[Path, typer.Argument(help="A store folder (holding train/valid/test.h5).")],
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Clips, hours and label counts per split of a preprocessed store."""
    from rich.table import Table

    from samplecnn_cli.data.store import Store

    data = Store(store).info()
    if json_out:
        print_json(data)
        return
    console.print(f"[bold]{data['dataset']}[/] store at {data['path']}: {data['sample_rate']} Hz, "
                  f"{data['task']}, {len(data['label_names'])} labels", highlight=False)
    splits = data["splits"]
    table = Table("label", *[f"{s} ({v['clips']} clips, {v['hours']:.2f} h)" for s, v in splits.items()], box=None)
    for name in data["label_names"]:
        table.add_row(name, *[str(v["label_counts"][name]) for v in splits.values()])
    console.print(table)


@app.command("make-toy")
def make_toy(
    directory: Annotated[Path, typer.Argument(help="New (or empty) folder to write the dataset into.")],
    clips: Annotated[int, typer.Option("--clips", "-n", help="Number of clips.")] = 240,
    seconds: Annotated[float, typer.Option("--seconds", "-s", help="Length of each clip.")] = 3.5,
    seed: Annotated[int, typer.Option("--seed", help="Random seed: same seed, same files.")] = 0,
    sr: Annotated[int, typer.Option("--sr", help="Sample rate of the audio files.")] = 22050,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Generate the toy multi-label dataset (WAV, FLAC, MP3 + labels.csv) used by the demo."""
    from samplecnn_cli.data.datasets.toy import make_toy as build

    summary = build(directory, clips=clips, seconds=seconds, seed=seed, sample_rate=sr)
    if json_out:
        print_json(summary)
        return
    splits = ", ".join(f"{k} {v}" for k, v in summary["splits"].items())
    console.print(f"[green]wrote {summary['clips']} clips[/] ({splits}) to {summary['path']}", highlight=False)
    console.print("tags: " + ", ".join(f"{k} {v}" for k, v in summary["tag_counts"].items()), highlight=False)
