"""`samplecnn export`: a trained run as an ONNX or TorchScript file with a dynamic batch axis, and its
model card (NAME.json, NAME.md) beside it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from samplecnn_cli.cli.console import console, print_json


def export(
    run_dir: Annotated[Path, typer.Argument(help="A run folder written by `samplecnn train`.")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="File to write (.onnx or .pt; default: "
                                             "RUN_DIR/export/RUN_NAME.onnx or .pt).")] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="onnx (needs samplecnn\\[onnx]) or torchscript.")] = "onnx",
    json_out: Annotated[bool, typer.Option("--json", help="Print the file's metadata as JSON.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Replace --out even when samplecnn did not write it "
                                        "(atomically).")] = False,
) -> None:
    """Export the model (batch norm folded) for deployment: input audio (batch, input_samples) at the
    model's rate; outputs scores (sigmoid or softmax, as `tag` reports), logits, the 512-d embedding and
    the last three hidden layers; labels, task, sample rate, input size, resampler, hop, training data and
    test metrics stored as metadata in the file; a model card (NAME.json, NAME.md) written beside it."""
    from samplecnn_cli.inference.export import check_format, default_path

    check_format(fmt)
    result = _export_guarded(run_dir, Path(out) if out is not None else default_path(run_dir, fmt), fmt, force)
    if json_out:
        print_json(result)
        return
    console.print(f"Wrote {result['out']} ({fmt}): {result['model']}, input {result['input_samples']} samples at "
                  f"{result['sample_rate']} Hz, dynamic batch; outputs scores ({result['scores']}), logits, "
                  "embedding", highlight=False, soft_wrap=True)
    console.print(f"Model card: {result['card']} and {result['card_md']}", highlight=False, soft_wrap=True)


def _export_guarded(run_dir: Path, out: Path, fmt: str, force: bool) -> dict:
    """export_run behind the output guard (never over a checkpoint, a store, an input...) and the lock."""
    from samplecnn_cli.core.locks import hold
    from samplecnn_cli.core.outputs import guard_file, remove_stale_temporaries, write_failure
    from samplecnn_cli.inference.export import export_run
    from samplecnn_cli.runs.folder import RunDir

    run = RunDir(Path(run_dir))
    guard_file(out, own={"onnx:samplecnn", "torchscript:samplecnn"}, force=force,
               inputs=[run.best, run.last, run.config])
    with hold(Path(out), str(out)):
        remove_stale_temporaries(out)
        try:
            return export_run(run_dir, out, fmt)
        except (OSError, RuntimeError) as exc:  # ONNX's and torch's writers do not name the file
            failure = write_failure(exc, out)
            if failure is None:
                raise
            raise failure from None
