"""`samplecnn visualize-filters`: what each conv filter learned (Section 7.1, Figures 2-4)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from samplecnn_cli.cli.console import current_context, err_console, print_json
from samplecnn_cli.core.errors import UsageError

RunDirsOpt = Annotated[list[Path] | None, typer.Argument(help="Run directory (default: the workspace's latest "
                                                         "run); several with --compare.", show_default=False)]
LayerOpt = Annotated[str, typer.Option("--layer", "-l", help="Layer(s): 4, 1,2,3, 1-4 or all "
                                       "(1 = first conv stage).")]
MethodOpt = Annotated[str, typer.Option("--method", "-m", help="auto (layer 1: the frequency response of its "
                                        "weights; layers 2 and up: gradient ascent), weights (layer 1 only) "
                                        "or ascent.")]
FiltersOpt = Annotated[str, typer.Option("--filters", "-f", help="'all' or 0-based filter indices, e.g. 0,5,7.")]
InputSamplesOpt = Annotated[int, typer.Option("--input-samples", min=1,
                                              help="Length of the optimised input (raised to the layer's "
                                                   "receptive field when shorter).")]
StepSizeOpt = Annotated[float, typer.Option("--step-size", help="Step size (gradient normalised to RMS 1).")]
OutOpt = Annotated[Path | None, typer.Option("--out", "-o", help="Output folder (default: RUN_DIR/filters, or "
                                             "./filters-compare with --compare).", show_default=False)]
CompareOpt = Annotated[bool, typer.Option("--compare", help="Draw Figure 4: the runs' spectra side by side "
                                          "(one column per run, ordered by sample rate).")]
AsJsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON (one object per filter).")]


def visualize_filters(
    run_dirs: RunDirsOpt = None,
    layer: LayerOpt = "1",
    method: MethodOpt = "auto",
    filters: FiltersOpt = "all",
    input_samples: InputSamplesOpt = 729,
    steps: Annotated[int, typer.Option("--steps", min=1, help="Gradient-ascent steps.")] = 18,
    step_size: StepSizeOpt = 1.0,
    seed: Annotated[int, typer.Option("--seed", "-s", help="Seed of the starting noise.")] = 0,
    out: OutOpt = None,
    compare: CompareOpt = False,
    no_svg: Annotated[bool, typer.Option("--no-svg", help="Write PNG only.")] = False,
    as_json: AsJsonOpt = False,
    force: Annotated[bool, typer.Option("--force", help="Replace files in --out even when samplecnn did not "
                                        "write them (atomically).")] = False,
) -> None:
    """What each filter responds to: waveforms (Fig. 2), sorted spectra (Fig. 3) or, with --compare, spectra
    of models at different sample rates side by side (Fig. 4).

    Layers 2 and up: gradient ascent from noise per filter. Layer 1 (the default) is drawn from its
    weights: a filter = stride = 3 first layer is linear up to its ReLU, so gradient ascent there can only
    give energy at 0 and sr/3 (one line, whatever the filter learned); each filter's frequency response
    is what it actually passes. --method ascent draws the gradient-ascent version anyway."""
    from samplecnn_cli.viz.visualize import compare_runs, visualize_run

    def progress(message: str) -> None:
        if not as_json:
            err_console.print(f"[dim]{message}[/]")

    run_dirs = list(run_dirs or [])
    _guard_out(run_dirs, out, compare, force)
    options = dict(input_samples=input_samples, steps=steps, step_size=step_size, seed=seed, svg=not no_svg,
                   progress=progress)
    if compare:
        if not run_dirs:
            raise UsageError("--compare needs run directories", hint="samplecnn visualize-filters --compare RUN_A RUN_B")
        result = compare_runs(run_dirs, layer, out_dir=out or Path("filters-compare"), **options)
        if as_json:
            print_json(result)
        else:
            typer.echo(f"Figure 4 ({len(run_dirs)} runs): {Path(result['out_dir']) / result['figures'][0]}")
        return
    summary = visualize_run(_one_run(run_dirs, as_json), layer, filters, out_dir=out, method=method, **options)
    if as_json:
        rows = [row for entry in summary["layers"] for row in entry["filters"]]
        print_json({**{k: v for k, v in summary.items() if k != "layers"},
                    "layers": [{k: v for k, v in e.items() if k != "filters"} for e in summary["layers"]],
                    "filters": rows})
        return
    _print_layers(summary, progress)


def _one_run(run_dirs: list[Path], quiet: bool) -> Path:
    """The run to visualise: the one given, else the workspace's latest training run."""
    if len(run_dirs) > 1:
        raise UsageError("several run directories given", hint="pass one, or add --compare for Figure 4")
    run_dir = run_dirs[0] if run_dirs else None
    if run_dir is None:
        from samplecnn_cli.runs.workspace import Workspace

        run_dir = Workspace.find(root=current_context().workspace).latest_run(kind="train")
        if not quiet:
            err_console.print(f"Using the latest run: {run_dir}")
    if not Path(run_dir).is_dir():
        raise UsageError(f"{run_dir} is not a folder", hint="pass a run directory written by `samplecnn train`")
    return Path(run_dir)


def _print_layers(summary: dict, say) -> None:
    for entry in summary["layers"]:
        peaks = [row["peak_hz"] for row in entry["filters"]]
        source = "weights (frequency response)" if entry["method"] == "weights" else \
            f"gradient ascent on {entry['input_samples']} samples"
        typer.echo(f"layer {entry['layer']}: {entry['num_filters']} filters, {source}, peaks "
                   f"{min(peaks):,.0f}-{max(peaks):,.0f} Hz (median {sorted(peaks)[len(peaks) // 2]:,.0f})")
        if entry.get("note"):
            say(entry["note"])
    typer.echo(f"Figures and filters.json in {summary['out_dir']}")


def _guard_out(run_dirs: list[Path], out: Path | None, compare: bool, force: bool) -> None:
    """filters.json in --out must be samplecnn's own (figures are checked as they are named)."""
    from samplecnn_cli.core.outputs import guard_files

    if out is not None and not compare:
        guard_files([Path(out) / "filters.json"], force=force)
