"""`samplecnn tag`: tag audio files or a whole library with a trained run (inference/library.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from samplecnn_cli.cli.console import console, current_context, err_console, print_json


def tag(
    run_dir: Annotated[Path, typer.Argument(help="A run folder written by `samplecnn train`.")],
    paths: Annotated[list[Path], typer.Argument(help="Audio files or folders (walked for audio files).")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Stream one record per file to this .csv or "
                                             ".jsonl as files finish; a rerun skips files already in it.")] = None,
    top_k: Annotated[int, typer.Option("--top-k", "-k", help="How many labels to show per file.")] = 5,
    threshold: Annotated[float | None, typer.Option("--threshold", help="Also list every label scoring at "
                                                    "least this (0-1) as the file's tags.")] = None,
    hop: Annotated[float | None, typer.Option("--hop", help="Seconds between window starts (default: one "
                                              "window, i.e. non-overlapping).")] = None,
    timeline: Annotated[bool, typer.Option("--timeline", help="Also record every window's scores.")] = False,
    taggram: Annotated[Path | None, typer.Option("--taggram", help="Draw one PNG of window scores per file "
                                                 "into this folder (implies --timeline).")] = None,
    batch_size: Annotated[int | None, typer.Option("--batch-size", "-b", help="Windows per forward pass "
                                                   "(default: measured on this machine).")] = None,
    workers: Annotated[int | None, typer.Option("--workers", "-j", help="Decoding processes (0: decode in "
                                                "the main process; default: half the cores).")] = None,
    device: Annotated[str, typer.Option("--device", help="auto, cpu or cuda.")] = "auto",
    precision: Annotated[str, typer.Option("--precision", "-p", help="fp32, bf16, fp16 (CUDA only) or auto "
                                           "(bf16 where the hardware runs it natively).")] = "auto",
    engine: Annotated[str, typer.Option("--engine", help="torch (fastest backend measured here) or onnx "
                                        "(needs samplecnn\\[onnx]).")] = "torch",
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON (a list per file, or the summary "
                                           "with --out).")] = False,
    force: Annotated[bool, typer.Option("--force", help="Replace --out (and --taggram files) even when samplecnn did not write it "
                                        "(atomically).")] = False,
) -> None:
    """Tag audio files: decode (in parallel), resample to the model's rate, run the model over every
    window, average, and print the top-k labels or stream every label's score to --out.

    For a library: `samplecnn tag RUN ~/Music --out tags.csv`; kill it any time and run the same
    command again to finish the rest. Unreadable files are reported; the rest continue."""
    from samplecnn_cli.core.errors import DataError
    from samplecnn_cli.core.runtime import Runtime
    from samplecnn_cli.inference.library import check_options, collect_files, load_library_model

    check_options(top_k=top_k, batch_size=batch_size, hop=hop, threshold=threshold, workers=workers)
    files = collect_files(paths)
    if not files:
        raise DataError("no audio files found", hint="pass audio files or folders holding them")
    target = _guard_out(run_dir, files, out, force) if out is not None else None  # before any work
    replacing = bool(force and target is not None and target.exists)
    model = load_library_model(run_dir, Runtime.resolve(device, precision), batch_size=batch_size, engine=engine,
                               cache=current_context().inference_cache)
    timeline = timeline or taggram is not None
    draw = _taggram_drawer(model, taggram, hop)
    if out is not None:
        _tag_to_file(model, files, out, top_k, hop, timeline, threshold, workers, draw, json_out, replacing)
        return
    _tag_and_print(model, files, top_k, hop, timeline, threshold, workers, draw, json_out)


def _guard_out(run_dir: Path, files: list[Path], out: Path, force: bool):
    """--out must be a tag file (or new): never an input, a checkpoint, a store... unless --force."""
    from samplecnn_cli.core.outputs import guard_file
    from samplecnn_cli.runs.folder import RunDir

    run = RunDir(Path(run_dir))
    return guard_file(out, own={"tags"}, force=force, inputs=[*files, run.best, run.last, run.config])


def _tag_to_file(model, files, out, top_k, hop, timeline, threshold, workers, draw, json_out, replacing) -> None:
    from samplecnn_cli.cli import console as cli
    from samplecnn_cli.inference.library import tag_to_file
    from samplecnn_cli.inference.progress import file_progress

    with file_progress("tag", quiet=json_out, console=cli.err_console) as (on_start, on_file):
        summary = tag_to_file(model, files, out, top_k=top_k, hop=hop, timeline=timeline, threshold=threshold,
                              workers=workers, on_start=on_start, on_file=lambda r: (draw(r), on_file(r)),
                              replace=replacing)
    if json_out:
        print_json(summary)
    else:
        console.print(f"Wrote {summary['out']}: {summary['tagged']} tagged, {summary['failed']} failed, "
                      f"{summary['skipped_done']} already there ({summary['audio_seconds'] / 3600:.2f} h audio, "
                      f"{summary['realtime'] or 0:.0f}x realtime, {summary['backend']} {summary['precision']}, "
                      f"batch {summary['batch_size']})", highlight=False, soft_wrap=True)
    if summary["failed"] and not summary["tagged"] and not summary["skipped_done"]:
        raise typer.Exit(1)


def _tag_and_print(model, files, top_k, hop, timeline, threshold, workers, draw, json_out) -> None:
    from samplecnn_cli.cli import console as cli
    from samplecnn_cli.inference.library import tag_files
    from samplecnn_cli.inference.progress import file_progress

    with file_progress("tag", quiet=json_out, console=cli.err_console) as (on_start, on_file):
        on_start(len(files))
        results = tag_files(model, files, top_k=top_k, hop=hop, timeline=timeline, threshold=threshold,
                            workers=workers, on_file=lambda r: (draw(r), on_file(r)))
    failed = [r for r in results if "error" in r]
    if json_out:
        print_json(results)
    else:
        _print_table(results)
    for r in failed:
        err_console.print(f"[yellow]Skipped[/] {r['path']}: {r['error']}", highlight=False, soft_wrap=True)
    if len(failed) == len(results):
        raise typer.Exit(1)


def _taggram_drawer(model, folder: Path | None, hop: float | None):
    """A per-file callback drawing the file's taggram into `folder` (nothing without --taggram)."""
    if folder is None:
        return lambda r: None
    from samplecnn_cli.viz.figures import TaggramFolder

    taggrams = TaggramFolder(folder, model.labels, model.hop_samples(hop) / model.predictor.sample_rate)
    return lambda r: taggrams.draw(r.path, r.window_scores) if r.error is None else None


def _print_table(results: list[dict]) -> None:
    from rich.table import Table

    shown = max((len(r["top"]) for r in results if "error" not in r), default=0)  # never more than labels
    table = Table(title_justify="left")
    table.add_column("file", overflow="fold")
    table.add_column("seconds", justify="right")
    for i in range(shown):
        table.add_column(f"#{i + 1}")
    for r in results:
        if "error" in r:
            continue
        cells = [f"{t['label']} {t['score']:.3f}" for t in r["top"]]
        seconds = f"{r['seconds']:.1f}" + (" (short)" if r.get("short") else "")
        table.add_row(r["path"], seconds, *cells, *[""] * (shown - len(cells)))
    console.print(table)
