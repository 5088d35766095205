"""`samplecnn report`: runs beside the paper's tables, as one offline HTML page, Markdown and JSON."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from samplecnn_cli.cli.console import err_console, print_json


def report(
    inputs: Annotated[list[Path], typer.Argument(help="Run directories (and compare-features or t-SNE folders).",
                                                 show_default=False)],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for report.html, report.md, report.json.")
                   ] = Path("report"),
    title: Annotated[str, typer.Option("--title", "-t", help="Title of the report.")] = "SampleCNN report",
    as_json: Annotated[bool, typer.Option("--json", help="Print report.json's content instead of the path.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Replace files in --out even when samplecnn did not "
                                        "write them (atomically).")] = False,
) -> None:
    """Build a self-contained HTML report (figures embedded, opens offline) plus report.md and report.json:
    run table, the paper's Tables 2/4/5/6, curves, ROC / confusion, filters, t-SNE.

    A run sits beside the paper's numbers only when it is the paper's configuration, trained on MTAT and
    evaluated by ROC-AUC; other runs go to a table of their own with the reason. Runs still running or
    failed are skipped."""
    from samplecnn_cli.core.outputs import guard_files
    from samplecnn_cli.report.build import build_report

    guard_files([Path(out) / name for name in ("report.html", "report.md", "report.json")], force=force)
    data = build_report(inputs, out, title=title)
    if as_json:
        print_json(data)
        return
    for reason in data["skipped"]:
        err_console.print(f"[yellow]Skipped:[/] {reason}", highlight=False)
    typer.echo(f"{len(data['runs'])} runs, {len(data['tables'])} tables, {len(data['figures'])} figures; "
               f"Markdown: {data['markdown']}")
    typer.echo(data["html"])
