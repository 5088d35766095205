"""`samplecnn train`: train a model with the paper's recipe (a thin wrapper over training.trainer.train)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from samplecnn_cli.cli import console


def train(
    model: Annotated[str, typer.Argument(help="Model name, e.g. 'sample-3^9' (or sample-3pow9), 'sample-8k'.")],
    data: Annotated[Path | None, typer.Option("--data", "-d", help="A preprocessed store folder.")] = None,
    dataset: Annotated[str | None, typer.Option("--dataset", "-D", help="A dataset preprocessed in the "
                                                "workspace (the store at the model's native rate when "
                                                "there are several).")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Run folder (default: a new folder under "
                                             "the workspace's runs/).")] = None,
    epochs: Annotated[int | None, typer.Option("--epochs", "-e", help="Stop after this many epochs at most "
                                               "(default: when the paper's schedule ends).")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", help="Segments per optimizer step "
                                            "(over all processes).")] = 23,
    lr: Annotated[float, typer.Option("--lr", help="Initial learning rate (divided by 5 at each plateau).")] = 0.01,
    precision: Annotated[str, typer.Option("--precision", "-p", help="fp32, bf16, fp16 (CUDA only) or auto "
                                           "(bf16 where the hardware runs it natively).")] = "auto",
    device: Annotated[str, typer.Option("--device", help="auto, cpu or cuda.")] = "auto",
    workers: Annotated[int | None, typer.Option("--workers", "-w", help="Segment reader threads "
                                                "(default: 0 on CPU, 8 on CUDA).")] = None,
    seed: Annotated[int, typer.Option("--seed", "-s", help="Random seed (weights, shuffling, dropout).")] = 0,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in --out from its last "
                                         "checkpoint.")] = False,
    dropout: Annotated[float | None, typer.Option("--dropout", help="Override the model's dropout "
                                                  "(paper: 0.5).")] = None,
) -> None:
    """Train MODEL on a preprocessed dataset with the paper's recipe (SGD Nesterov 0.9, lr 0.01 / 5 on
    plateau, 4 decreases, batch 23). Under torchrun, trains with DistributedDataParallel."""
    from samplecnn_cli.training.trainer import train as train_run

    run_dir = train_run(model=model, data=data, dataset=dataset, out=out, epochs=epochs, batch_size=batch_size,
                        lr=lr, precision=precision, device=device, workers=workers, seed=seed, resume=resume,
                        dropout=dropout)
    if os.environ.get("RANK", "0") == "0":  # under torchrun, rank 0 alone reports
        console.print(f"Run: {run_dir}", highlight=False, soft_wrap=True)
