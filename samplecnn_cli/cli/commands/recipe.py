"""`samplecnn recipe run|list`: reproduce an experiment of the paper with one command."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from samplecnn_cli.cli.console import App, console, current_context, echo_command, print_json

app = App(help="Run the bundled recipes that reproduce the paper's tables and figures (or your own).")


def default_workdir(recipe_name: str) -> Path:
    return Path.cwd() / "recipes-work" / recipe_name


@app.command("run")
def run_command(
    ctx: typer.Context,
    recipe: Annotated[str, typer.Argument(help="A bundled recipe name (`samplecnn recipe list`) or a TOML file.")],
    data_root: Annotated[Path | None, typer.Option("--data-root", "-d", help="Folder holding the raw datasets "
                                                   "(the recipe's \\[datasets] paths are under it).")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", "-s", help="Override a variable: key=value "
                                                   "(repeatable), e.g. --set epochs=3.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", "-n", help="Print the plan (run/skip, commands, "
                                          "time and disk estimates) and run nothing.")] = False,
    smoke: Annotated[bool, typer.Option("--smoke", help="Tiny scale on the generated toy dataset: seconds "
                                        "per step (what CI runs).")] = False,
    workdir: Annotated[Path | None, typer.Option("--workdir", "-w", help="Where outputs, the lock file and "
                                                 "the report go \\[default: ./recipes-work/RECIPE].")] = None,
    isolate: Annotated[bool, typer.Option("--isolate", help="Run each step in its own Python process "
                                          "(slower start, full isolation).")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the plan (with --dry-run) or the summary "
                                           "as JSON.")] = False,
) -> None:
    """Run a recipe's steps in order, skipping those whose command, inputs and outputs are unchanged."""
    from samplecnn_cli.recipe import load_recipe, plan_steps, resolve_recipe, run_recipe
    from samplecnn_cli.recipe.resolve import parse_set
    from samplecnn_cli.recipe.runner import in_process, run_subprocess
    from samplecnn_cli.runs.workspace import Workspace

    spec = load_recipe(recipe)
    resolved = resolve_recipe(spec, workdir=workdir or default_workdir(spec.name), overrides=parse_set(set_ or []),
                              smoke=smoke, data_root=data_root, workspace_datasets=Workspace.find(root=current_context().workspace).datasets)
    if dry_run:
        decisions = plan_steps(resolved)
        if json_out:
            print_json({"recipe": spec.name, "smoke": smoke, "workdir": str(resolved.workdir),
                        "missing_datasets": [str(d.path) for d in resolved.missing_datasets()] if not smoke else [],
                        "steps": [d.as_dict() for d in decisions]})
        else:
            print_plan(resolved, decisions)
        return
    echo = (lambda line: None) if json_out else echo_command
    summary = run_recipe(resolved, runner=run_subprocess if isolate else in_process(ctx.find_root().command, current_context()), echo=echo)
    if json_out:
        print_json(summary)
        return
    console.print(f"[bold green]Recipe {spec.name} finished[/] in {summary['seconds']:.1f} s: "
                  f"{summary['ran']} step(s) ran, {summary['skipped']} skipped. Outputs in {resolved.workdir}",
                  highlight=False, soft_wrap=True)


def print_plan(resolved, decisions) -> None:
    import shlex

    spec = resolved.recipe
    scale = "smoke: toy data, tiny models" if resolved.smoke else "full scale"
    console.print(f"[bold]{spec.name}[/]: {spec.title} ({scale}); workdir {resolved.workdir}", highlight=False,
                  soft_wrap=True)
    for number, decision in enumerate(decisions, 1):
        step = decision.step
        action = f"[yellow]run[/]  ({decision.reason})" if decision.run else "[green]skip[/] (unchanged)"
        estimate = "" if resolved.smoke or not (step.minutes or step.disk_gb) else \
            f"  [dim]~{_minutes(step.minutes)}, {_disk(step.disk_gb)}[/]"
        console.print(f"{number:>3}. {step.name}  {action}{estimate}", highlight=False)
        console.print(f"     $ samplecnn {shlex.join(step.argv)}", highlight=False, markup=False, soft_wrap=True)
    to_run = [d.step for d in decisions if d.run]
    console.print(f"{len(to_run)} of {len(decisions)} step(s) to run.")
    if not resolved.smoke:
        minutes = sum(s.minutes for s in to_run)
        disk = sum(s.disk_gb for s in to_run)
        console.print(f"Estimated on real data: {_minutes(minutes)} and {_disk(disk)} of disk "
                      f"({spec.cost or 'see the recipe'}).", highlight=False)
        for dataset in resolved.missing_datasets():
            console.print(f"[yellow]Dataset '{dataset.name}' is not at {dataset.path}[/] "
                          f"(pass --data-root DIR or --set datasets.{dataset.name}=DIR)", highlight=False)


def _minutes(minutes: float) -> str:
    if not minutes:
        return "–"
    return f"{minutes:.0f} min" if minutes < 120 else f"{minutes / 60:.1f} h"


def _disk(gb: float) -> str:
    if not gb:
        return "–"
    return f"{gb * 1000:.0f} MB" if gb < 1 else f"{gb:.1f} GB"


@app.command("list")
def list_command(
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """The bundled recipes: what each reproduces and what it costs on real data."""
    from samplecnn_cli.recipe import bundled_recipes

    recipes = [r.summary() for r in bundled_recipes()]
    if json_out:
        print_json(recipes)
        return
    console.print(recipes_table(recipes))
    console.print("Run one with `samplecnn recipe run NAME` (add --dry-run to see the plan, --smoke for a "
                  "toy-scale check).", style="dim")


def recipes_table(recipes: list[dict]):
    """Three columns so the text column is wide enough at 80 columns to wrap at spaces, never mid-word:
    the title, then what it reproduces, the datasets and the cost, dimmed."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    table = Table(title=f"samplecnn recipes ({len(recipes)})", title_justify="left", box=box.SIMPLE_HEAD,
                  show_edge=False, collapse_padding=True)
    table.add_column("name", no_wrap=True)
    table.add_column("steps", justify="right", no_wrap=True)
    table.add_column("what it reproduces, what it costs on real data", ratio=1)
    for r in recipes:
        datasets = f"; datasets: {', '.join(r['datasets'])}" if r["datasets"] else ""
        about = Text(r["title"], style="bold")
        about.append(f"\nreproduces {r['reproduces']}{datasets}\ncost: {r['cost']}", style="dim")
        table.add_row(r["name"], str(r["steps"]), about, end_section=True)
    return table
