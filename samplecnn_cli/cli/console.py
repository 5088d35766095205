"""Shared CLI plumbing: a Typer app whose commands turn library errors into one clear line."""

from __future__ import annotations

import csv
import functools
import inspect
import json
import os
import sys
from typing import Any

import typer
from rich.console import Console, ConsoleDimensions
from typer import _click as click
from typer._click.globals import get_current_context
from typer.core import TyperCommand, TyperGroup
from typer.exceptions import Abort

from samplecnn_cli.core.context import Context
from samplecnn_cli.core.errors import SampleCNNError
from samplecnn_cli.core.outputs import write_failure

PIPE_WIDTH = 100_000  # "as wide as the content": Rich pads nothing to the console's width


class OutputConsole(Console):
    """A Rich console whose width is the terminal's on a terminal, and unlimited into a pipe or a file.

    Rich otherwise falls back to 80 columns (or the width of whichever std stream is still a terminal),
    so `samplecnn tag ... | cat` folded every path into pieces and `evaluate > file` cut labels to `b…`.
    Into a pipe, tables take their natural width and lines never wrap; COLUMNS still sets a width when
    the caller asks for one (`COLUMNS=80 samplecnn recipe list | less`).
    """

    @property
    def size(self) -> ConsoleDimensions:
        size = super().size
        if self._width is None and not self.is_terminal and not os.environ.get("COLUMNS", "").isdigit():
            return ConsoleDimensions(PIPE_WIDTH, size.height)
        return size

    @size.setter
    def size(self, new_size) -> None:
        Console.size.fset(self, new_size)


console = OutputConsole()
err_console = OutputConsole(stderr=True)



def current_context() -> Context:
    """The process context `main` built for this command (core/context.py); read from the environment
    when a command function is called outside the CLI (a test calling it directly)."""
    ctx = get_current_context(silent=True)
    root = ctx.find_root() if ctx is not None else None
    if root is not None and isinstance(root.obj, Context):
        return root.obj
    return Context.from_environment()


def debug_enabled() -> bool:
    return current_context().debug


def fail(error: SampleCNNError) -> typer.Exit:
    """Print `error` on stderr as one line (and a hint) and return the Exit to raise."""
    from rich.markup import escape

    # escaped: messages quote paths, TOML tables ([datasets.msd]) and option syntax, never markup
    err_console.print(f"[bold red]Error:[/] {escape(error.message)}", highlight=False, soft_wrap=True)
    if error.hint:
        err_console.print(f"[dim]Hint:[/] {escape(error.hint)}", highlight=False, soft_wrap=True)
    return typer.Exit(error.exit_code)


_depth = [0]  # commands running in this process: a recipe step runs inside `recipe run`


def _guard(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        _depth[0] += 1
        try:
            if _depth[0] == 1:
                from samplecnn_cli.core import signals

                signals.import_deferred()
            return fn(*args, **kwargs)
        except SampleCNNError as error:
            if debug_enabled():
                raise
            raise fail(error) from None
        except KeyboardInterrupt as interrupt:  # Ctrl-C, or SIGTERM (core/signals.py)
            if _depth[0] > 1:  # a recipe step: the recipe records it, then says it once
                raise
            raise interrupted(interrupt) from None
        except (OSError, RuntimeError) as exc:  # a write no library code turned into its own error
            failure = write_failure(exc)
            if failure is None or debug_enabled():
                raise
            raise fail(failure) from None
        finally:
            _depth[0] -= 1

    wrapper.__doc__ = _reflow(fn.__doc__)
    return wrapper


def interrupted(interrupt: BaseException) -> typer.Exit:
    """One line for an interrupt, and the exit code a shell gives it (130 for Ctrl-C, 143 for SIGTERM)."""
    from samplecnn_cli.core import signals

    then = getattr(interrupt, "hint", None) or "run the same command again to continue"
    err_console.print(f"[yellow]Interrupted ({signals.describe(interrupt)}): stopped cleanly; {then}.[/]",
                      highlight=False, soft_wrap=True)
    return typer.Exit(signals.exit_code(interrupt))


def _reflow(doc: str | None) -> str | None:
    """Join the wrapped lines of each docstring paragraph: rich help keeps single newlines as breaks."""
    if not doc:
        return doc
    paragraphs = inspect.cleandoc(doc).split("\n\n")
    return "\n\n".join(" ".join(line.strip() for line in p.splitlines()) for p in paragraphs)


def _usage_error_line(error: click.ClickException) -> None:
    """Typer/Click's own errors (bad option value, unknown option, missing argument) in the same style as
    SampleCNNError: one `Error:` line and a hint, instead of Typer's usage text and boxed panel."""
    ctx = getattr(error, "ctx", None)
    hint = f"run '{ctx.command_path} --help' for the options" if ctx is not None else None
    fail(SampleCNNError(error.format_message(), hint=hint))


class Interrupted(Exception):
    """Ctrl-C or SIGTERM carried past Typer, which would turn it into a silent exit 130 (SIGTERM too)."""

    def __init__(self, interrupt: KeyboardInterrupt):
        super().__init__(repr(interrupt))
        self.interrupt = interrupt


class OneStyleGroup(TyperGroup):
    """The root group: runs Typer in non-standalone mode so usage errors are printed by `fail`."""

    def get_params(self, ctx):
        return _untyped_flags(super().get_params(ctx))

    def make_context(self, *args, **kwargs):
        try:
            return super().make_context(*args, **kwargs)
        except KeyboardInterrupt as interrupt:
            raise Interrupted(interrupt) from interrupt

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt as interrupt:  # outside a command, or a recipe step's (see _guard)
            raise Interrupted(interrupt) from interrupt

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except Interrupted as error:
            sys.exit(interrupted(error.interrupt).exit_code)
        except click.exceptions.NoArgsIsHelpError as error:
            sys.exit(error.exit_code)  # the help has been printed already
        except click.ClickException as error:
            _usage_error_line(error)
            sys.exit(error.exit_code)
        except Abort:
            err_console.print("[yellow]Aborted.[/]")
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


def _untyped_flags(params: list) -> list:
    """Flags take no value, so `--help` shows no `<bool>` type beside them (an empty metavar)."""
    for param in params:
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
    return params


class OneStyleCommand(TyperCommand):
    def get_params(self, ctx):
        return _untyped_flags(super().get_params(ctx))


class App(typer.Typer):
    """typer.Typer whose commands report SampleCNNError as one line and an exit code, no traceback."""

    def __init__(self, **kwargs: Any):
        kwargs.setdefault("no_args_is_help", True)
        kwargs.setdefault("rich_markup_mode", "rich")
        kwargs.setdefault("pretty_exceptions_enable", False)
        kwargs.setdefault("cls", OneStyleGroup)
        super().__init__(**kwargs)

    def command(self, *args: Any, **kwargs: Any):
        kwargs.setdefault("cls", OneStyleCommand)
        register = super().command(*args, **kwargs)

        def decorator(fn):
            register(_guard(fn))
            return fn

        return decorator


def print_json(data: Any) -> None:
    """Machine-readable output on stdout, nothing else on the line."""
    sys.stdout.write(json.dumps(data, indent=2, default=_json_default) + "\n")
    sys.stdout.flush()


def print_csv(header: list[str], rows: list[list]) -> None:
    """CSV on stdout (a header, then one line per row), for spreadsheets and `cut`."""
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    sys.stdout.flush()


def echo_command(line: str) -> None:
    """A line that may hold a command to paste back (a recipe step's `$ samplecnn ...`): printed whole,
    never wrapped or read as markup."""
    console.print(line, highlight=False, markup=False, soft_wrap=True)


def _json_default(value: Any):
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "__fspath__"):
        return os.fspath(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


class progress_bar:
    """A transient Rich bar on stderr for a long step, shown only on a terminal (piped output stays quiet).

    `with progress_bar("evaluate", total=300) as update: ... update(done)` where `done` is the count so far.
    """

    def __init__(self, description: str, total: int | None, *, enabled: bool = True):
        self._progress = None
        if enabled and err_console.is_terminal:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                      TimeRemainingColumn(), console=err_console, transient=True)
            self._task = self._progress.add_task(description, total=total)

    def __enter__(self):
        if self._progress is not None:
            self._progress.start()
        return self.update

    def update(self, done: int, total: int | None = None, description: str | None = None) -> None:
        if self._progress is not None:
            fields = {"total": total, "description": description}
            self._progress.update(self._task, completed=done, **{k: v for k, v in fields.items() if v is not None})

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.stop()
