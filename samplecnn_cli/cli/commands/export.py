"""`samplecnn export`: a trained run as an ONNX or TorchScript file with a dynamic batch axis."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from samplecnn_cli.cli.console import console, print_json


def export(
    run_dir: Annotated[Path, typer.Argument(help="A run folder written by `samplecnn train`.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="File to write (.onnx or .pt).")],
    fmt: Annotated[str, typer.Option("--format", "-f", help="onnx (needs samplecnn\\[onnx]) or torchscript.")] = "onnx",
    json_out: Annotated[bool, typer.Option("--json", help="Print the file's metadata as JSON.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Replace --out even when samplecnn did not write it "
                                        "(atomically).")] = False,
) -> None:
    """Export the model (batch norm folded) for deployment: input audio (batch, input_samples) at the
    model's rate; outputs logits and the last three hidden layers; labels, task, sample rate and
    input size stored as metadata in the file."""
    from samplecnn_cli.inference.export import metadata
    from samplecnn_cli.inference.library import load_waveform_run

    loaded = load_waveform_run(run_dir)
    path = _export_guarded(loaded, run_dir, out, fmt, force)
    meta = metadata(loaded)
    if json_out:
        print_json({"out": str(path), "format": fmt, **meta})
        return
    console.print(f"Wrote {path} ({fmt}): {meta['model']}, input {meta['input_samples']} samples at "
                  f"{meta['sample_rate']} Hz, dynamic batch", highlight=False, soft_wrap=True)


def _export_guarded(loaded, run_dir: Path, out: Path, fmt: str, force: bool) -> Path:
    """export_model behind the output guard (never over a checkpoint, a store, an input...) and the lock."""
    from samplecnn_cli.core.locks import hold
    from samplecnn_cli.core.outputs import guard_file, remove_stale_temporaries, write_failure
    from samplecnn_cli.inference.export import export_model
    from samplecnn_cli.runs.folder import RunDir

    run = RunDir(Path(run_dir))
    guard_file(out, own={"onnx:samplecnn", "torchscript:samplecnn"}, force=force,
               inputs=[run.best, run.last, run.config])
    with hold(Path(out), str(out)):
        remove_stale_temporaries(out)
        try:
            return export_model(loaded, out, fmt)
        except (OSError, RuntimeError) as exc:  # ONNX's and torch's writers do not name the file
            failure = write_failure(exc, out)
            if failure is None:
                raise
            raise failure from None
