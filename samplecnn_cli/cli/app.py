"""The `samplecnn` command: a root Typer app with one thin module per command under commands/.

Command modules import only typer/rich at module level (torch and friends inside the command), so
`samplecnn --help` stays fast and no model plugin is imported for it.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated

import typer

from samplecnn_cli import __version__
from samplecnn_cli.cli.commands import (
    bench,
    compare_features,
    datasets,
    demo,
    doctor,
    embed,
    evaluate,
    export,
    extract,
    models,
    preprocess,
    recipe,
    report,
    similar,
    tag,
    train,
    transfer,
    tsne,
    visualize,
)
from samplecnn_cli.cli.console import App, interrupted
from samplecnn_cli.core.context import Context

app = App(
    name="samplecnn",
    help="End-to-end music classification on raw waveforms: SampleCNN (Lee et al. 2018) and its baselines.",
    add_completion=True,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"samplecnn {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    version: Annotated[bool, typer.Option("--version", "-V", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks on errors.")] = False,
) -> None:
    """samplecnn: preprocess audio to HDF5, train sample-level CNNs, evaluate, extract, transfer, visualize."""
    if not isinstance(ctx.obj, Context):  # a recipe step run in this process brings its own
        ctx.obj = Context.from_environment(debug=debug)
        ctx.obj.apply()  # before any command imports torch (memory.py says why)
    elif debug:
        ctx.obj = replace(ctx.obj, debug=True)


# -- command registration: one line per command, in the order of the data flow ---------------------
app.command("preprocess", rich_help_panel="Data")(preprocess.preprocess)
app.add_typer(datasets.app, name="datasets", rich_help_panel="Data")
app.command("train", rich_help_panel="Training")(train.train)
app.command("evaluate", rich_help_panel="Training")(evaluate.evaluate)
app.command("tag", rich_help_panel="Training")(tag.tag)
app.command("embed", rich_help_panel="Features")(embed.embed)
app.command("similar", rich_help_panel="Features")(similar.similar)
app.command("export", rich_help_panel="Training")(export.export)
app.add_typer(bench.app, name="bench", rich_help_panel="Training")
app.command("extract", rich_help_panel="Features")(extract.extract)
app.command("transfer", rich_help_panel="Features")(transfer.transfer)
app.command("compare-features", rich_help_panel="Features")(compare_features.compare_features)
app.command("tsne", rich_help_panel="Features")(tsne.tsne)
app.command("visualize-filters", rich_help_panel="Figures & reports")(visualize.visualize_filters)
app.command("report", rich_help_panel="Figures & reports")(report.report)
app.add_typer(recipe.app, name="recipe", rich_help_panel="Recipes")
app.command("demo", rich_help_panel="Recipes")(demo.demo)
app.add_typer(models.app, name="models", rich_help_panel="Models")
app.command("doctor", rich_help_panel="Setup")(doctor.doctor)

def run() -> None:
    """The `samplecnn` executable: SIGTERM handled like Ctrl-C (core/signals.py), then the app."""
    import sys

    from samplecnn_cli.core import signals

    signals.install()
    try:
        app()
    except KeyboardInterrupt as interrupt:  # before or after a command ran (its own are handled inside)
        sys.exit(interrupted(interrupt).exit_code)
    except SystemExit as done:
        _leave_if_hdf5_failed(done)
        raise


def _leave_if_hdf5_failed(done: SystemExit) -> None:
    """After HDF5 failed a write (data/h5write.py: a full disk reached it despite the reservation),
    its clean-up at exit would crash: leave without it, once the error line has been printed."""
    import os
    import sys

    writer = sys.modules.get("samplecnn_cli.data.h5write")  # never imported: nothing was written
    if writer is not None and writer.unsafe_files():
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(done.code if isinstance(done.code, int) else 1)


if __name__ == "__main__":
    run()
