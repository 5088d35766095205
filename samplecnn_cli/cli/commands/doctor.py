"""`samplecnn doctor`: check the installation and the machine before a long job."""

from __future__ import annotations

from typing import Annotated

import typer

from samplecnn_cli.cli.console import console, current_context, err_console, print_json

STYLE = {"ok": "green", "warn": "yellow", "error": "bold red"}


def doctor(json_out: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False) -> None:
    """Check what a long job needs: package versions and whether they load together, CPU features and the
    precision `auto` picks, CUDA devices, ffmpeg, the inference cache and the workspace. Exit 1 when a
    piece is broken (one `Error:` line each)."""
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    from samplecnn_cli.bench.doctor import as_json, run_checks

    checks = run_checks(current_context())
    if json_out:
        print_json(as_json(checks))
    else:
        table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, collapse_padding=True)
        table.add_column("check", no_wrap=True)
        table.add_column("", no_wrap=True)
        table.add_column("found", overflow="fold")
        for check in checks:
            table.add_row(check.name, f"[{STYLE[check.status]}]{check.status}[/]", escape(check.detail))
        console.print(table)
    broken = [check for check in checks if check.status == "error"]
    for check in broken:
        err_console.print(f"[bold red]Error:[/] {escape(check.name)}: {escape(check.detail)}", highlight=False,
                          soft_wrap=True)
    if broken:
        raise typer.Exit(1)
