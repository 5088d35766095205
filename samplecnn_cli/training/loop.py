"""The epoch loop: one loop for every kind of run (`train` and `transfer`).

    fit(state, runner, hooks, max_epochs) -> state

Each epoch: the schedule's lr onto the optimizer -> runner.train_epoch (mean loss, items) ->
runner.validate (loss, metric) -> schedule.step decides (CONTINUE, DECREASE: best weights back and a
fresh optimizer at the new lr, STOP) -> an EpochResult to every hook in order (console + log line,
metrics.jsonl, checkpoints, ...). A runner knows its data and model (segments of a store, rows of a
feature file, one process or DDP); a hook knows one output. The state (training/state.py) is the
whole of what last.pt holds.
"""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

from samplecnn_cli.runs import folder as runs
from samplecnn_cli.training.schedule import DECREASE, STOP
from samplecnn_cli.training.state import TrainState

log = logging.getLogger("samplecnn.train")


@dataclass
class EpochResult:
    epoch: int
    train_loss: float
    valid: dict  # {"loss", "metric" (e.g. "valid_accuracy"), "value"}
    lr: float  # the lr this epoch trained with
    seconds: float  # the whole epoch, validation included
    train_seconds: float
    items: int  # training items (segments, clips) this epoch over all processes
    unit: str  # what an item is: "segments" | "clips"
    improved: bool
    decision: str
    next_lr: float

    def row(self) -> dict:
        """The metrics.jsonl line."""
        return {"epoch": self.epoch, "train_loss": self.train_loss, "valid_loss": self.valid["loss"],
                self.valid["metric"]: self.valid["value"], "lr": self.lr, "seconds": round(self.seconds, 3),
                "train_seconds": round(self.train_seconds, 3), self.unit: self.items,
                f"{self.unit}_per_second": round(self.items / max(self.train_seconds, 1e-9), 2),
                "best": self.improved, "decision": self.decision}

    def line(self) -> str:
        """The console and log line."""
        metric = self.valid["metric"].replace("_", " ")
        rate = self.items / max(self.train_seconds, 1e-9)
        return (f"epoch {self.epoch}: train loss {self.train_loss:.4f}, valid loss {self.valid['loss']:.4f}, "
                f"{metric} {self.valid['value']:.4f}, lr {self.lr:g}, {rate:,.1f} {self.unit}/s, "
                f"{self.seconds:.1f} s" + (" *best*" if self.improved else "")
                + (f", lr -> {self.next_lr:g}" if self.decision == DECREASE else ""))


class Runner(Protocol):
    unit: str

    def train_epoch(self, state: TrainState) -> tuple[float, int]:
        """Train one epoch; the mean loss and the items trained on, over all processes."""

    def validate(self, state: TrainState) -> dict:
        """{"loss", "metric", "value"} of the current weights (the same on every process)."""


class Hook:
    """Told about every epoch (after the schedule decided) and about the end of fit()."""

    def epoch(self, state: TrainState, result: EpochResult) -> None:
        pass

    def end(self, state: TrainState) -> None:
        pass


def fit(state: TrainState, runner: Runner, hooks: list[Hook], max_epochs: int | None = None) -> TrainState:
    """Train until the schedule stops (or `max_epochs`); a state that already stopped returns at once,
    unless it stopped at an epoch cap that `max_epochs` now raises (resume with a larger --epochs)."""
    if state.stop_reason == _cap(state.epoch) and (max_epochs is None or max_epochs > state.epoch):
        state.stop_reason = None
    while state.stop_reason is None:
        if max_epochs is not None and state.epoch >= max_epochs:
            state.stop_reason = _cap(max_epochs)
            break
        result = run_epoch(state, runner)
        for hook in hooks:
            hook.epoch(state, result)
    for hook in hooks:
        hook.end(state)
    return state


def _cap(epochs: int) -> str:
    return f"epoch cap ({epochs})"


def run_epoch(state: TrainState, runner: Runner) -> EpochResult:
    state.epoch += 1
    lr = state.schedule.lr
    for group in state.optimizer.param_groups:
        group["lr"] = lr
    began = time.perf_counter()
    train_loss, items = runner.train_epoch(state)
    train_seconds = time.perf_counter() - began
    valid = runner.validate(state)
    decision = state.schedule.step(state.epoch, valid["loss"])
    improved = state.schedule.best_epoch == state.epoch
    if improved:
        state.keep_best()
    if decision == DECREASE:  # the authors' recipe: back to the best weights, smaller lr, fresh momentum
        state.reload_best()
    elif decision == STOP:
        state.stop_reason = state.schedule.stop_text()
    seconds = time.perf_counter() - began
    state.seconds += seconds
    return EpochResult(state.epoch, train_loss, valid, lr, seconds, train_seconds, items, runner.unit, improved,
                       decision, state.schedule.lr)


# -- hooks -----------------------------------------------------------------------------------------
class ConsoleHook(Hook):
    """The epoch line on the console (when given) and in the log; the closing line at the end (the run
    folder is not repeated there: `train` ends with its `Run:` line)."""

    def __init__(self, console=None):
        self.console = console

    def epoch(self, state, result):
        self._say(result.line())

    def end(self, state):
        s = state.schedule
        self._say(f"Done: {state.epoch} epochs in {state.seconds:.1f} s, best epoch {s.best_epoch} "
                  f"(valid loss {s.best_loss:.4f}); stopped: {state.stop_reason}.")

    def _say(self, line: str) -> None:
        if self.console is not None:
            self.console.print(line, highlight=False)
        log.info(line)


class MetricsHook(Hook):
    """One metrics.jsonl line per epoch."""

    def __init__(self, run_dir: runs.RunDir):
        self.run_dir = run_dir

    def epoch(self, state, result):
        self.run_dir.append_metrics(result.row())


class CheckpointHook(Hook):
    """best.pt when validation improved (unless `write_best` is off: another hook chooses best.pt);
    last.pt (the whole state) at the end, and after every epoch when the run can be resumed (`every_epoch`)."""

    def __init__(self, run_dir: runs.RunDir, save: dict, every_epoch: bool = True, write_best: bool = True):
        self.run_dir, self.save, self.every_epoch = run_dir, save, every_epoch  # save: the model's description
        self.write_best = write_best

    def epoch(self, state, result):
        if result.improved and self.write_best:
            runs.save_checkpoint(self.run_dir.best, state_dict=state.best,
                                 extra={"epoch": result.epoch, "valid_loss": result.valid["loss"]}, **self.save)
        if self.every_epoch:
            self.end(state)

    def end(self, state):
        runs.save_checkpoint(self.run_dir.last, state_dict=state.model.state_dict(), extra=state.state_dict(),
                             **self.save)


def summary(state: TrainState, kind: str, model_name: str, world_size: int = 1) -> dict:
    """summary.json: the same keys for every run kind (runs.SUMMARY_KEYS)."""
    s = state.schedule
    return {"kind": kind, "model": model_name, "epochs": state.epoch, "best_epoch": s.best_epoch,
            "best_valid_loss": s.best_loss, "final_lr": s.lr, "lr_decreases": s.decreases_done,
            "stop_reason": state.stop_reason, "total_seconds": round(state.seconds, 3),
            "params": sum(p.numel() for p in state.model.parameters()), "world_size": world_size}


@contextmanager
def run_log(run_dir: runs.RunDir, enabled: bool = True):
    """Log lines of the epoch loop (and the runner) into the run's train.log while the block runs."""
    handler = logging.FileHandler(run_dir.log) if enabled else None
    if handler is not None:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
    try:
        yield log
    finally:
        if handler is not None:
            log.removeHandler(handler)
            handler.close()
