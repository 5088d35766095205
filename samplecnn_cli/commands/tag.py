"""`samplecnn tag`: tag audio files or a whole library with a trained run (over tagging.py's engine)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from samplecnn_cli.cli import console, err_console, print_json


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
    precision: Annotated[str, typer.Option("--precision", "-p", help="fp32, bf16 or auto (bf16 only where "
                                           "the CPU has it natively).")] = "auto",
    engine: Annotated[str, typer.Option("--engine", help="torch (fastest backend measured here) or onnx "
                                        "(needs samplecnn\\[onnx]).")] = "torch",
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON (a list per file, or the summary "
                                           "with --out).")] = False,
) -> None:
    """Tag audio files: decode (in parallel), resample to the model's rate, run the model over every
    window, average, and print the top-k labels or stream every label's score to --out.

    For a library: `samplecnn tag RUN ~/Music --out tags.csv`; kill it any time and run the same
    command again to finish the rest. Unreadable files are reported; the rest continue."""
    from samplecnn_cli import cli
    from samplecnn_cli.errors import DataError
    from samplecnn_cli.inference.progress import file_progress
    from samplecnn_cli.tagging import check_options, collect_files, tag_files, tag_to_file

    check_options(top_k=top_k, batch_size=batch_size, hop=hop, threshold=threshold, workers=workers)
    if not collect_files(paths):
        raise DataError("no audio files found", hint="pass audio files or folders holding them")
    if out is not None:
        with file_progress("tag", quiet=json_out, console=cli.err_console) as (on_start, on_file):
            summary = tag_to_file(run_dir, paths, out, top_k=top_k, batch_size=batch_size, device=device,
                                  precision=precision, hop=hop, timeline=timeline, threshold=threshold,
                                  taggram_dir=taggram, workers=workers, engine=engine, on_start=on_start,
                                  on_file=on_file)
        if json_out:
            print_json(summary)
        else:
            console.print(f"Wrote {summary['out']}: {summary['tagged']} tagged, {summary['failed']} failed, "
                          f"{summary['skipped_done']} already there ({summary['audio_seconds'] / 3600:.2f} h audio, "
                          f"{summary['realtime'] or 0:.0f}x realtime, {summary['backend']} {summary['precision']}, "
                          f"batch {summary['batch_size']})", highlight=False, soft_wrap=True)
        if summary["failed"] and not summary["tagged"] and not summary["skipped_done"]:
            raise typer.Exit(1)
        return
    with file_progress("tag", quiet=json_out, console=cli.err_console) as (on_start, on_file):
        on_start(len(collect_files(paths)))
        results = tag_files(run_dir, paths, top_k=top_k, batch_size=batch_size, device=device, precision=precision,
                            hop=hop, timeline=timeline or taggram is not None, threshold=threshold,
                            workers=workers, engine=engine)
    if taggram is not None:
        _draw(run_dir, results, taggram, hop)
    failed = [r for r in results if "error" in r]
    if json_out:
        print_json(results)
    else:
        _print_table(results)
    for r in failed:
        err_console.print(f"[yellow]Skipped[/] {r['path']}: {r['error']}", highlight=False, soft_wrap=True)
    if len(failed) == len(results):
        raise typer.Exit(1)


def _draw(run_dir, results: list[dict], folder: Path, hop: float | None) -> None:
    import numpy as np

    from samplecnn_cli.inference.engine import FileResult
    from samplecnn_cli.tagging import draw_taggram, load_waveform_run

    loaded = load_waveform_run(run_dir)
    rate = int(loaded.sample_rate or loaded.model.sample_rate)
    hop_seconds = hop or loaded.model.input_samples / rate
    used: set[str] = set()
    for r in results:
        if "timeline" in r:
            draw_taggram(FileResult(path=r["path"], windows=r["segments"], window_scores=np.asarray(r["timeline"])),
                         list(r["scores"]), hop_seconds, folder, used)


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
