"""`samplecnn train`: train a model with the paper's recipe (a thin wrapper over training.trainer.train)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from samplecnn_cli.cli.console import console, current_context, err_console

DatasetOpt = Annotated[str | None, typer.Option("--dataset", "-D", help="A dataset preprocessed in the "
                                                "workspace (the store at the model's native rate when "
                                                "there are several).")]
OutOpt = Annotated[Path | None, typer.Option("--out", "-o", help="Run folder (default: a new folder under "
                                             "the workspace's runs/).")]
RecipeOpt = Annotated[str, typer.Option("--recipe", "-r", help="default: chosen by measurement on small "
                                        "real datasets (see --help's text); paper: the paper's exact recipe "
                                        "(plateau schedule, fixed segments). Options below override "
                                        "it.")]
EpochsOpt = Annotated[int | None, typer.Option("--epochs", "-e", help="Epochs (default recipe: 30; paper: a cap, "
                                               "the schedule ends the run).")]
BatchSizeOpt = Annotated[int, typer.Option("--batch-size", "-b", help="Segments per optimizer step "
                                           "(over all processes).")]
LrOpt = Annotated[float | None, typer.Option("--lr", help="Initial (peak) learning rate "
                                             "(default recipe: 0.001; paper: 0.01).")]
ScheduleOpt = Annotated[str | None, typer.Option("--schedule", help="plateau (paper: lr / 5 after --patience "
                                                 "epochs without progress, best weights reloaded), step (lr x "
                                                 "0.2 after each of --lr-steps) or cosine.")]
LrStepsOpt = Annotated[str | None, typer.Option("--lr-steps", help="step schedule: epochs after which lr "
                                                "drops, e.g. 10 or 10,20.")]
WarmupEpochsOpt = Annotated[int | None, typer.Option("--warmup-epochs", help="step/cosine: epochs of linear "
                                                     "lr warm-up.")]
PatienceOpt = Annotated[int | None, typer.Option("--patience", help="plateau: epochs without validation "
                                                 "improvement before lr drops (3).")]
OptimizerOpt = Annotated[str | None, typer.Option("--optimizer", help="sgd (Nesterov 0.9; paper) or adamw "
                                                 "(default recipe).")]
WeightDecayOpt = Annotated[float | None, typer.Option("--weight-decay", help="Weight decay (default "
                                                      "recipe: 0.01; paper: 0).")]
SamplingOpt = Annotated[str | None, typer.Option("--sampling", help="grid: the same non-overlapping segments "
                                                 "every epoch (paper); random: segments at random offsets "
                                                 "of long clips every epoch.")]
SelectOpt = Annotated[str | None, typer.Option("--select", help="Which weights become best.pt (what evaluate, "
                                               "tag and export use): best (the epoch with the lowest "
                                               "validation loss), last (the final epoch) or swa (the mean of "
                                               "the last --swa-epochs epochs' weights, batch norm "
                                               "recomputed; step or cosine schedule).")]
SwaEpochsOpt = Annotated[int, typer.Option("--swa-epochs", help="--select swa: how many final epochs "
                                           "are averaged.")]
TrainSplitsOpt = Annotated[str | None, typer.Option("--train-splits", help="Splits to train on: train, or "
                                                    "train,valid (all labelled clips; validation is still "
                                                    "reported on valid, but is then no held-out signal: use "
                                                    "--select last or swa).")]
PrecisionOpt = Annotated[str, typer.Option("--precision", "-p", help="fp32, bf16, fp16 (CUDA only) or auto "
                                           "(bf16 where the hardware runs it natively).")]
WorkersOpt = Annotated[int | None, typer.Option("--workers", "-w", help="Segment reader threads "
                                                "(default: 0 on CPU, 8 on CUDA).")]
ResumeOpt = Annotated[bool, typer.Option("--resume", help="Continue the run in --out from its last "
                                         "checkpoint.")]
DropoutOpt = Annotated[float | None, typer.Option("--dropout", help="Override the model's dropout "
                                                  "(paper: 0.5).")]


def train(
    model: Annotated[str, typer.Argument(help="Model name, e.g. 'sample-3^9' (or sample-3pow9), 'sample-8k'.")],
    data: Annotated[Path | None, typer.Option("--data", "-d", help="A preprocessed store folder.")] = None,
    dataset: DatasetOpt = None,
    out: OutOpt = None,
    recipe: RecipeOpt = "default",
    epochs: EpochsOpt = None,
    batch_size: BatchSizeOpt = 23,
    lr: LrOpt = None,
    schedule: ScheduleOpt = None,
    lr_steps: LrStepsOpt = None,
    warmup_epochs: WarmupEpochsOpt = None,
    patience: PatienceOpt = None,
    optimizer: OptimizerOpt = None,
    weight_decay: WeightDecayOpt = None,
    sampling: SamplingOpt = None,
    select: SelectOpt = None,
    swa_epochs: SwaEpochsOpt = 5,
    train_splits: TrainSplitsOpt = None,
    precision: PrecisionOpt = "auto",
    device: Annotated[str, typer.Option("--device", help="auto, cpu or cuda.")] = "auto",
    workers: WorkersOpt = None,
    seed: Annotated[int, typer.Option("--seed", "-s", help="Random seed (weights, shuffling, dropout).")] = 0,
    resume: ResumeOpt = False,
    dropout: DropoutOpt = None,
) -> None:
    """Train MODEL on a preprocessed dataset. Under torchrun, trains with DistributedDataParallel.

    Two recipes. --recipe default (for your own data, chosen by measurement on small real datasets):
    AdamW lr 0.001 (weight decay 0.01) on a cosine over 30 epochs, segments at random offsets of long
    clips every epoch, batch 23. --recipe paper (the paper's Section 5.2, right for MTAT-sized data and
    what the table recipes use): SGD Nesterov 0.9, lr 0.01 / 5 after 3 epochs without validation improvement with
    the best weights reloaded, 4 decreases, fixed non-overlapping segments, batch 23."""
    from samplecnn_cli.core.errors import UsageError
    from samplecnn_cli.training.trainer import train as train_run

    context = current_context()
    context.configure_threads()  # this process's share of the CPU cores (all of them without torchrun)
    try:
        steps = [int(s) for s in lr_steps.split(",")] if lr_steps else None
    except ValueError:
        raise UsageError(f"--lr-steps takes epoch numbers separated by commas, not '{lr_steps}'") from None
    run_dir = train_run(model=model, data=data, dataset=dataset, out=out, recipe=recipe, epochs=epochs,
                        batch_size=batch_size, lr=lr, schedule=schedule, lr_steps=steps, warmup_epochs=warmup_epochs,
                        patience=patience, optimizer=optimizer, weight_decay=weight_decay, sampling=sampling,
                        select=select, swa_epochs=swa_epochs,
                        train_splits=train_splits.split(",") if train_splits else None,
                        precision=precision, device=device, workers=workers, seed=seed, resume=resume,
                        model_overrides={"dropout": dropout}, workspace=context.workspace, dist=context.dist,
                        console=err_console)  # epoch lines on stderr, whole in a pipe (cli/console.py)
    if context.dist.is_main:  # under torchrun, rank 0 alone reports
        console.print(f"Run: {run_dir}", highlight=False, soft_wrap=True)
