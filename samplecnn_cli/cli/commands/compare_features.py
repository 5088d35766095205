"""`samplecnn compare-features`: Tables 4 and 6, a transfer run per feature choice."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from samplecnn_cli.cli.console import console, err_console, print_json, progress_bar


def compare_features(
    features: Annotated[list[Path], typer.Argument(help="Feature files written by `samplecnn extract`.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the runs, table.md and table.json.")],
    paper: Annotated[str, typer.Option("--paper", help="Paper column to show: auto (from the dataset name), "
                                       "none, gtzan, mtat, tagtraum or msd.")] = "auto",
    hidden: Annotated[int, typer.Option("--hidden", min=1, help="Units in each MLP hidden layer.")] = 4096,
    epochs: Annotated[int, typer.Option("--epochs", "-e", min=1, help="Most epochs per run.")] = 100,
    patience: Annotated[int, typer.Option("--patience", min=1, help="Early-stopping patience (epochs).")] = 10,
    lr: Annotated[float, typer.Option("--lr", help="Adam learning rate.")] = 1e-4,
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", min=1, help="Clips per step.")] = 64,
    seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 0,
    json_out: Annotated[bool, typer.Option("--json", help="Print the table as JSON.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Replace files in --out even when samplecnn did not "
                                        "write them (atomically).")] = False,
) -> None:
    """Compare feature choices as in Tables 4 and 6: one transfer run per choice, one table.

    Choices: layer -3, -2, -1 and the last 3 layers (and, with several runs, each run alone). Writes
    OUT/table.md and OUT/table.json with the paper's numbers beside ours where they apply."""
    from samplecnn_cli.core.outputs import guard_files
    from samplecnn_cli.features.compare import compare_features as run_comparison

    guard_files([Path(out) / "table.md", Path(out) / "table.json"], force=force)
    from samplecnn_cli.features.transfer import TransferOptions

    def on_row(row: dict) -> None:
        if not json_out:
            err_console.print(f"done: {row['features']}", highlight=False)

    with progress_bar("compare-features", total=None, enabled=not json_out) as update:
        def on_progress(done: int, total: int, name: str) -> None:
            update(done, total, f"compare-features: {name}")

        options = TransferOptions(hidden=hidden, epochs=epochs, patience=patience, lr=lr, batch_size=batch_size,
                                  seed=seed)
        table = run_comparison(features, out, paper_column=paper, on_row=on_row, progress=on_progress,
                               options=options)
    if json_out:
        print_json(table)
        return
    console.print((Path(out) / "table.md").read_text(), highlight=False, markup=False)
