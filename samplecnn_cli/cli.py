"""Shared CLI plumbing: a Typer app whose commands turn library errors into one clear line."""

from __future__ import annotations

import functools
import inspect
import json
import os
import sys
from typing import Any

import typer
from rich.console import Console

from samplecnn_cli.errors import SampleCNNError

console = Console()
err_console = Console(stderr=True)

_debug = {"on": bool(os.environ.get("SAMPLECNN_DEBUG"))}


def set_debug(on: bool) -> None:
    _debug["on"] = on


def debug_enabled() -> bool:
    return _debug["on"]


def fail(error: SampleCNNError) -> typer.Exit:
    """Print `error` on stderr as one line (and a hint) and return the Exit to raise."""
    err_console.print(f"[bold red]Error:[/] {error.message}", highlight=False, soft_wrap=True)
    if error.hint:
        err_console.print(f"[dim]Hint:[/] {error.hint}", highlight=False, soft_wrap=True)
    return typer.Exit(error.exit_code)


def _guard(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except SampleCNNError as error:
            if debug_enabled():
                raise
            raise fail(error) from None
        except KeyboardInterrupt:
            err_console.print("[yellow]Interrupted.[/]")
            raise typer.Exit(130) from None

    wrapper.__doc__ = _reflow(fn.__doc__)
    return wrapper


def _reflow(doc: str | None) -> str | None:
    """Join the wrapped lines of each docstring paragraph: rich help keeps single newlines as breaks."""
    if not doc:
        return doc
    paragraphs = inspect.cleandoc(doc).split("\n\n")
    return "\n\n".join(" ".join(line.strip() for line in p.splitlines()) for p in paragraphs)


class App(typer.Typer):
    """typer.Typer whose commands report SampleCNNError as one line and an exit code, no traceback."""

    def __init__(self, **kwargs: Any):
        kwargs.setdefault("no_args_is_help", True)
        kwargs.setdefault("rich_markup_mode", "rich")
        kwargs.setdefault("pretty_exceptions_enable", False)
        super().__init__(**kwargs)

    def command(self, *args: Any, **kwargs: Any):
        register = super().command(*args, **kwargs)

        def decorator(fn):
            register(_guard(fn))
            return fn

        return decorator


def print_json(data: Any) -> None:
    """Machine-readable output on stdout, nothing else on the line."""
    sys.stdout.write(json.dumps(data, indent=2, default=_json_default) + "\n")
    sys.stdout.flush()


def _json_default(value: Any):
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "__fspath__"):
        return os.fspath(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
