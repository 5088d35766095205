"""`samplecnn evaluate`: song-level metrics of a trained run (a thin wrapper over evaluation.evaluate)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from samplecnn_cli.cli.console import console, current_context, print_json, progress_bar


def evaluate(
    run_dir: Annotated[Path | None, typer.Argument(help="Run folder (default: the workspace's latest run).")] = None,
    split: Annotated[str, typer.Option("--split", help="train, valid or test.")] = "test",
    data: Annotated[Path | None, typer.Option("--data", "-d", help="Evaluate on this store instead of the "
                                              "run's own.")] = None,
    checkpoint: Annotated[str, typer.Option("--checkpoint", "-c", help="best or last.")] = "best",
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", min=1, help="Segments per forward pass.")] = 64,
    device: Annotated[str, typer.Option("--device", help="auto, cpu or cuda.")] = "auto",
    precision: Annotated[str, typer.Option("--precision", "-p", help="run: as the run trained (its precision; "
                                           "a bf16 run unfolded, as its validation saw it); or fp32, bf16, fp16, "
                                           "auto: batch norm folded, the fastest backend.")] = "run",
    json_out: Annotated[bool, typer.Option("--json", help="Print the metrics as JSON.")] = False,
) -> None:
    """Song-level metrics (mean of segment outputs over each clip): ROC-AUC and PR-AUC for tagging,
    accuracy, macro F1 and the confusion matrix for single-label tasks. Writes RUN_DIR/metrics.json."""
    from samplecnn_cli.core.errors import UsageError
    from samplecnn_cli.core.runtime import Runtime
    from samplecnn_cli.inference.evaluate import evaluate_run, metrics_path

    if split not in ("train", "valid", "test"):
        raise UsageError(f"unknown split '{split}'", hint="use train, valid or test")
    if checkpoint not in ("best", "last"):
        raise UsageError(f"unknown checkpoint '{checkpoint}'", hint="use best or last")
    if run_dir is None:
        from samplecnn_cli.runs.workspace import Workspace

        run_dir = Workspace.find(root=current_context().workspace).latest_run()
    with progress_bar(f"evaluate {split}", total=None, enabled=not json_out) as update:
        runtime = None if precision == "run" else Runtime.resolve(device, precision)
        metrics = evaluate_run(run_dir, split, runtime, data=data, which=checkpoint, batch_size=batch_size,
                               cache=current_context().inference_cache, device=device,
                               progress=lambda done, total: update(done, total))
    if json_out:
        print_json(metrics)
        return
    _print_table(metrics)
    if (metrics.get("inference") or {}).get("note"):
        console.print(metrics["inference"]["note"], style="dim", highlight=False)
    console.print(f"Wrote {metrics_path(run_dir, split)}", style="dim", highlight=False, soft_wrap=True)


def _print_table(metrics: dict) -> None:
    from rich.table import Table

    inference = metrics.get("inference") or {}
    title = f"{metrics['model']} on {metrics['split']} ({metrics['clips']} clips"
    if inference:
        title += f", {inference['precision']}{' as trained' if inference['as_trained'] else ''}, {inference['forward']}"
    title += ")"
    if metrics["task"] == "multiclass":
        console.print(f"[bold]{title}[/]: accuracy {metrics['accuracy']:.4f}, macro F1 {metrics['macro_f1']:.4f}")
        table = Table(title="confusion matrix (rows: true, columns: predicted)", title_justify="left")
        table.add_column("")
        for name in metrics["labels"]:
            table.add_column(name, justify="right")
        for name, row in zip(metrics["labels"], metrics["confusion_matrix"], strict=False):
            table.add_row(name, *(str(v) for v in row))
        console.print(table)
        return
    roc, pr = metrics["roc_auc"], metrics["pr_auc"]
    console.print(f"[bold]{title}[/]: ROC-AUC {roc:.4f}, PR-AUC {pr:.4f}" if roc is not None
                  else f"[bold]{title}[/]: no label has both classes in this split")
    table = Table(title_justify="left")
    for column in ("label", "ROC-AUC", "PR-AUC", "positives"):
        table.add_column(column, justify="left" if column == "label" else "right")
    for name, row in metrics["per_label"].items():
        table.add_row(name, f"{row['roc_auc']:.4f}", f"{row['pr_auc']:.4f}", str(row["positives"]))
    console.print(table)
    if metrics["skipped_labels"]:
        console.print("Skipped (one class only): " + ", ".join(metrics["skipped_labels"]), style="dim")
