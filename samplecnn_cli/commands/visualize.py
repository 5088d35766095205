"""`samplecnn visualize-filters`: what each conv filter learned (Section 7.1, Figures 2-4)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from samplecnn_cli.cli import err_console, print_json
from samplecnn_cli.errors import UsageError


def visualize_filters(
    run_dirs: Annotated[list[Path] | None, typer.Argument(help="Run directory (default: the workspace's latest "
                                                          "run); several with --compare.", show_default=False)
                        ] = None,
    layer: Annotated[str, typer.Option("--layer", "-l", help="Layer(s): 4, 1,2,3, 1-4 or all "
                                       "(1 = first conv stage).")] = "1",
    method: Annotated[str, typer.Option("--method", "-m", help="auto (layer 1: the frequency response of its "
                                        "weights; layers 2 and up: gradient ascent), weights (layer 1 only) "
                                        "or ascent.")] = "auto",
    filters: Annotated[str, typer.Option("--filters", "-f", help="'all' or 0-based filter indices, e.g. 0,5,7.")
                       ] = "all",
    input_samples: Annotated[int, typer.Option("--input-samples", min=1,
                                               help="Length of the optimised input (raised to the layer's "
                                                    "receptive field when shorter).")] = 729,
    steps: Annotated[int, typer.Option("--steps", min=1, help="Gradient-ascent steps.")] = 18,
    step_size: Annotated[float, typer.Option("--step-size", help="Step size (gradient normalised to RMS 1).")
                         ] = 1.0,
    seed: Annotated[int, typer.Option("--seed", "-s", help="Seed of the starting noise.")] = 0,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Output folder (default: RUN_DIR/filters, or "
                                             "./filters-compare with --compare).", show_default=False)] = None,
    compare: Annotated[bool, typer.Option("--compare", help="Draw Figure 4: the runs' spectra side by side "
                                          "(one column per run, ordered by sample rate).")] = False,
    no_svg: Annotated[bool, typer.Option("--no-svg", help="Write PNG only.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON (one object per filter).")
                       ] = False,
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
    if compare:
        runs = run_dirs or []
        if not runs:
            raise UsageError("--compare needs run directories", hint="samplecnn visualize-filters --compare RUN_A RUN_B")
        result = compare_runs(runs, layer, input_samples=input_samples, steps=steps, step_size=step_size,
                              seed=seed, out_dir=out or Path("filters-compare"), svg=not no_svg, progress=progress)
        if as_json:
            print_json(result)
        else:
            typer.echo(f"Figure 4 ({len(runs)} runs): {Path(result['out_dir']) / result['figures'][0]}")
        return

    if len(run_dirs) > 1:
        raise UsageError("several run directories given", hint="pass one, or add --compare for Figure 4")
    run_dir = run_dirs[0] if run_dirs else None
    if run_dir is None:
        from samplecnn_cli.workspace import Workspace

        run_dir = Workspace.find().latest_run(kind="train")
        if not as_json:
            err_console.print(f"Using the latest run: {run_dir}")
    if not Path(run_dir).is_dir():
        raise UsageError(f"{run_dir} is not a folder", hint="pass a run directory written by `samplecnn train`")
    summary = visualize_run(run_dir, layer, filters, input_samples=input_samples, steps=steps,
                            step_size=step_size, seed=seed, out_dir=out, svg=not no_svg, progress=progress,
                            method=method)
    if as_json:
        rows = [row for entry in summary["layers"] for row in entry["filters"]]
        print_json({**{k: v for k, v in summary.items() if k != "layers"},
                    "layers": [{k: v for k, v in e.items() if k != "filters"} for e in summary["layers"]],
                    "filters": rows})
        return
    for entry in summary["layers"]:
        peaks = [row["peak_hz"] for row in entry["filters"]]
        source = "weights (frequency response)" if entry["method"] == "weights" else \
            f"gradient ascent on {entry['input_samples']} samples"
        typer.echo(f"layer {entry['layer']}: {entry['num_filters']} filters, {source}, peaks "
                   f"{min(peaks):,.0f}-{max(peaks):,.0f} Hz (median {sorted(peaks)[len(peaks) // 2]:,.0f})")
        if entry.get("note"):
            progress(entry["note"])
    typer.echo(f"Figures and filters.json in {summary['out_dir']}")
