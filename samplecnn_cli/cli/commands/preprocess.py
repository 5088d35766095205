"""`samplecnn preprocess`: decode a dataset's audio into an HDF5 store at one sample rate."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from samplecnn_cli.cli.console import console, current_context, err_console, print_json
from samplecnn_cli.core.errors import UsageError


def preprocess(
    dataset: Annotated[str | None, typer.Argument(
        help="mtat, msd, gtzan, tagtraum, folder, toy (or a plugin). Default: the workspace's datasets, else toy.",
        show_default=False)] = None,
    root: Annotated[Path | None, typer.Option("--root", "-r", help="Raw dataset folder (default: samplecnn.toml).")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Store folder (default: WORKSPACE/data/DATASET/RATE).")] = None,
    sr: Annotated[int, typer.Option("--sr", help="Sample rate of the store in Hz.")] = 22050,
    workers: Annotated[int, typer.Option("--workers", "-w", help="Worker processes (0 = all cores).")] = 0,
    shard: Annotated[str | None, typer.Option("--shard", help="Do only shard K of N (K/N, K from 1); the last shard merges.")] = None,
    clip_seconds: Annotated[float | None, typer.Option("--clip-seconds", help="Trim/pad clips to S seconds (0 = whole clips). Default: 29.1 for mtat/msd/gtzan/tagtraum, whole clips for folder/toy.")] = None,
    split_dir: Annotated[Path | None, typer.Option("--split-dir", help="Folder of split lists (MTAT_split, MSD_split, GTZAN_split, TAGTRAUM_split).")] = None,
    labels: Annotated[Path | None, typer.Option("--labels", help="Labels file, when not at its usual place in the root.")] = None,
    paths_csv: Annotated[Path | None, typer.Option("--paths-csv", help="msd/tagtraum: CSV track_id,path mapping ids to audio files.")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Seed of generated splits (folder) and of the toy data.")] = None,
    strict: Annotated[bool, typer.Option("--strict", help="Exit 1 if any file failed (the store is still written).")] = False,
    force: Annotated[bool, typer.Option("--force", help="Redo a store that is already up to date.")] = False,
    chunk_size: Annotated[int, typer.Option("--chunk-size", hidden=True, help="Clips per part file (0 = auto).")] = 0,
    json_out: Annotated[bool, typer.Option("--json", help="Print the result as JSON (no progress bar).")] = False,
) -> None:
    """Decode, downmix, resample and trim a dataset's audio into OUT/{train,valid,test}.h5 (resumable)."""
    from samplecnn_cli.data import preprocess as preprocessing
    from samplecnn_cli.runs.workspace import Workspace

    ws = Workspace.find(root=current_context().workspace)
    names = [dataset] if dataset else (list(ws.datasets) or ["toy"])
    if len(names) > 1 and (root is not None or out is not None):
        raise UsageError("--root/--out need a DATASET when the workspace configures several",
                         hint=f"name one of: {', '.join(names)}")
    settings = preprocessing.Settings(sample_rate=sr, clip_seconds=clip_seconds, workers=workers,
                               shard=preprocessing.parse_shard(shard), strict=strict, force=force, chunk_size=chunk_size)
    preprocessing.check_settings(settings)
    options = {"split_dir": split_dir, "labels": labels, "paths_csv": paths_csv, "seed": seed}
    plans = [preprocessing.resolve(name, root, out, sr, options, ws) for name in names]  # all checked before any work
    summaries = []
    for manifest, out_dir in plans:
        for note in manifest.notes if not json_out else []:
            err_console.print(f"[dim]{manifest.dataset}: {note}[/]", highlight=False)
        progress = None if json_out else preprocessing.RichProgress(err_console, f"{manifest.dataset} @ {sr} Hz")
        try:
            result = preprocessing.run(manifest, out_dir, settings,
                                on_start=progress.start if progress else None,
                                on_chunk=progress.chunk if progress else None)
        finally:
            if progress:
                progress.stop()
        summaries.append(_summary(result))
        if not json_out:
            _print(result)
    if json_out:
        print_json(summaries[0] if len(summaries) == 1 else summaries)


def _summary(result) -> dict:
    return {"dataset": result.dataset, "out": str(result.out), "complete": result.complete,
            "up_to_date": result.up_to_date, "written": result.written, "failed": len(result.failed),
            "splits": result.splits, "decoded_files": result.decoded_files, "reused_chunks": result.reused_chunks,
            "audio_hours": round(result.audio_hours, 4), "wall_seconds": round(result.wall_seconds, 2),
            "report": str(result.report_path) if result.report_path else None, "warnings": result.warnings}


def _print(result) -> None:
    for warning in result.warnings:
        err_console.print(f"[yellow]{warning}[/]", highlight=False)
    if result.up_to_date:
        console.print(f"[green]{result.dataset}: {result.out} is up to date[/] ({result.written} clips; --force redoes it)")
        return
    if not result.complete:
        for note in result.notes[-1:]:
            console.print(f"[yellow]{note}[/]")
        return
    splits = ", ".join(f"{k} {v}" for k, v in result.splits.items())
    speed = result.audio_hours * 3600 / max(result.wall_seconds, 1e-9)
    console.print(f"[green]{result.dataset}: wrote {result.written} clips[/] ({splits}) to {result.out} "
                  f"in {result.wall_seconds:.1f} s ({speed:,.0f}x realtime)", highlight=False)
    if result.failed:
        console.print(f"[yellow]{len(result.failed)} file(s) skipped[/], listed in {result.report_path}:")
        for entry in result.failed[:5]:
            console.print(f"  {entry['path']}: {entry['reason']}", highlight=False)
        if len(result.failed) > 5:
            console.print(f"  ... and {len(result.failed) - 5} more")
