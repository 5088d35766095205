"""A Rich progress bar for library runs (files, audio hours, x realtime) on stderr, only on a terminal."""

from __future__ import annotations

import time
from contextlib import contextmanager


@contextmanager
def file_progress(label: str, *, quiet: bool = False, console=None):
    """Yields (on_start(total), on_file(result)); draws nothing when stderr is not a terminal.

    `console`: a Rich console on stderr (a new one by default: the library does not import the CLI)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    err_console = console or Console(stderr=True)
    enabled = err_console.is_terminal and not quiet
    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("{task.fields[audio]}"), TimeRemainingColumn(), console=err_console,
                        transient=True, disable=not enabled)
    state = {"task": None, "seconds": 0.0, "began": time.perf_counter()}

    def on_start(total: int) -> None:
        state["task"] = progress.add_task(label, total=total, audio="")
        state["began"] = time.perf_counter()

    def on_file(result) -> None:
        if state["task"] is None:
            return
        state["seconds"] += getattr(result, "seconds", 0.0) or 0.0
        elapsed = max(1e-9, time.perf_counter() - state["began"])
        audio = f"{state['seconds'] / 3600:.2f} h audio, {state['seconds'] / elapsed:.0f}x realtime"
        progress.update(state["task"], advance=1, audio=audio)

    with progress:
        yield on_start, on_file
