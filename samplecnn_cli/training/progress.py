"""A Rich progress bar per epoch (loss, segments/s, ETA), shown only on a terminal."""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn


class EpochProgress:
    def __init__(self, console: Console, epoch: int, steps: int, *, enabled: bool = True):
        self.enabled = enabled and console.is_terminal
        self.started = time.perf_counter()
        self._progress = None
        if self.enabled:
            self._progress = Progress(
                TextColumn(f"epoch {epoch}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("loss {task.fields[loss]:.4f}"), TextColumn("{task.fields[rate]:,.1f} seg/s"),
                TimeRemainingColumn(), console=console, transient=True,
            )
            self._task = self._progress.add_task("train", total=steps, loss=float("nan"), rate=0.0)

    def __enter__(self) -> EpochProgress:
        if self._progress is not None:
            self._progress.start()
        return self

    def advance(self, mean_loss: float, segments_seen: int) -> None:
        if self._progress is not None:
            rate = segments_seen / max(time.perf_counter() - self.started, 1e-9)
            self._progress.update(self._task, advance=1, loss=mean_loss, rate=rate)

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.stop()
