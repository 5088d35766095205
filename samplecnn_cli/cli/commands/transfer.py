"""`samplecnn transfer`: train the two-layer MLP of Section 4.1 on extracted features."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from samplecnn_cli.cli.console import console, current_context, err_console, print_json


def transfer(
    features: Annotated[list[Path], typer.Argument(help="Feature files written by `samplecnn extract`.")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Run folder to create (default: a new "
                                             "folder under the workspace's runs/).")] = None,
    layers: Annotated[str | None, typer.Option("--layers", "-l", help="Hidden layers to use, of -3,-2,-1 (default: all).")] = None,
    runs: Annotated[str | None, typer.Option("--runs", "-r", help="Runs to use, by key or model name (default: all).")] = None,
    pooling: Annotated[str, typer.Option("--pooling", help="max, avg or both.")] = "max,avg",
    hidden: Annotated[int, typer.Option("--hidden", help="Units in each of the two hidden layers.")] = 4096,
    dropout: Annotated[float, typer.Option("--dropout", help="Dropout after each hidden layer.")] = 0.5,
    epochs: Annotated[int, typer.Option("--epochs", "-e", help="Most epochs.")] = 100,
    patience: Annotated[int, typer.Option("--patience", help="Stop after this many epochs without a lower "
                                          "validation loss.")] = 10,
    lr: Annotated[float, typer.Option("--lr", help="Adam learning rate.")] = 1e-4,
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", help="Clips per step.")] = 64,
    seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 0,
    device: Annotated[str, typer.Option("--device", help="auto, cpu or cuda.")] = "auto",
    precision: Annotated[str, typer.Option("--precision", "-p", help="fp32, bf16, fp16 (CUDA only) or auto "
                                           "(bf16 where the hardware runs it natively).")] = "fp32",
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in --out from its last epoch "
                                         "(same feature columns).")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print a JSON summary.")] = False,
) -> None:
    """Train the transfer MLP (two fully connected layers with dropout) on extracted features.

    The chosen columns are standardised (train mean/std); training uses Adam, keeps the best weights by
    validation loss and stops early; the test split is then evaluated like `samplecnn evaluate`
    (RUN_DIR/metrics.json)."""
    from samplecnn_cli.core.errors import UsageError
    from samplecnn_cli.data.features_file import POOLINGS, parse_layers, parse_names
    from samplecnn_cli.features.transfer import TransferOptions, train_transfer

    if out is None:
        from samplecnn_cli.runs.workspace import Workspace

        if resume:
            raise UsageError("--resume needs --out RUN_DIR (the run to continue)")
        out = Workspace.find(root=current_context().workspace).new_run_dir("transfer", Path(features[0]).stem)

    options = TransferOptions(hidden=hidden, dropout=dropout, epochs=epochs, lr=lr, batch_size=batch_size,
                              patience=patience, seed=seed, device=device, precision=precision)
    summary = train_transfer(features, out, options, runs=parse_names(runs), layers=parse_layers(layers),
                             poolings=parse_names(pooling, POOLINGS, "--pooling"), resume=resume,
                             console=None if json_out else err_console)
    if json_out:
        print_json(summary)
        return
    test = summary.get("test") or {}
    # the metrics (floats); counts such as clips and labels_scored are in --json
    shown = ", ".join(f"{k} {v:.4f}" for k, v in test.items() if isinstance(v, float))
    console.print(f"Wrote {summary['run_dir']} ({summary['columns']} features, best epoch {summary['best_epoch']} "
                  f"of {summary['epochs']})" + (f"; test: {shown}" if shown else ""), highlight=False, soft_wrap=True)
