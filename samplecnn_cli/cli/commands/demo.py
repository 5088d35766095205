"""`samplecnn demo`: the whole pipeline on the generated toy dataset, on a CPU, in minutes."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from samplecnn_cli.cli.console import App, console, current_context, echo_command

app = App()


def demo(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option("--out", "-o", help="Work folder for the demo's data, runs and "
                                      "report; a rerun skips finished steps.")] = Path("demo"),
    set_: Annotated[list[str] | None, typer.Option("--set", "-s", help="Override a variable of "
                                                   "recipes/demo.toml: key=value (repeatable).")] = None,
    smoke: Annotated[bool, typer.Option("--smoke", help="Even smaller: a few seconds per step (for CI).")] = False,
) -> None:
    """Make the toy dataset, preprocess, train a sample-level model and a frame-level baseline, evaluate,
    extract and transfer features, visualize filters and write the HTML report (the `demo` recipe)."""
    from samplecnn_cli.recipe import load_recipe, resolve_recipe, run_recipe
    from samplecnn_cli.recipe.resolve import parse_set
    from samplecnn_cli.recipe.runner import in_process

    spec = load_recipe("demo")
    resolved = resolve_recipe(spec, workdir=out, overrides=parse_set(set_ or []), smoke=smoke)
    console.print(f"[bold]samplecnn demo[/]: {spec.description.strip()}", highlight=False, soft_wrap=True)
    summary = run_recipe(resolved, runner=in_process(ctx.find_root().command, current_context()), echo=echo_command)
    console.print(f"[bold green]Demo finished[/] in {summary['seconds']:.0f} s "
                  f"({summary['ran']} step(s) ran, {summary['skipped']} skipped).")
    report = resolved.values.get("report_html")
    if report:
        console.print(f"Report: {report}", highlight=False, soft_wrap=True)
