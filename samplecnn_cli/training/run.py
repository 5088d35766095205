"""The run lifecycle, one for every kind of run (`train` and `transfer`).

    run = Run(folder, is_main=...)          # a prepared run folder (runs/folder.py RunDir)
    with run.lifecycle():                   # the folder's lock; status "running"; train.log; then
                                            # "interrupted" (Ctrl-C, SIGTERM) or "failed" + reason
        if run.resumable(resume):
            run.resume(state)               # last.pt back into the TrainState, metrics cut to its epoch
        else:
            run.begin(config, env)          # config.toml, env.json, no metric lines
        fit(state, runner, run.hooks(console, save) + ..., max_epochs)
        run.finish(summary)                 # summary.json, status "done"

Under torchrun every rank holds a Run; rank 0 alone (`is_main`) writes.
"""

from __future__ import annotations

import json
import uuid
from contextlib import contextmanager, nullcontext
from pathlib import Path

from samplecnn_cli.core import signals
from samplecnn_cli.core.errors import RunError, SampleCNNError
from samplecnn_cli.core.locks import hold
from samplecnn_cli.core.outputs import remove_stale_temporaries
from samplecnn_cli.runs import folder as runs
from samplecnn_cli.training.loop import CheckpointHook, ConsoleHook, Hook, MetricsHook, log, run_log
from samplecnn_cli.training.state import TrainState


class Run:
    def __init__(self, folder: runs.RunDir, *, is_main: bool = True):
        self.folder, self.is_main = folder, is_main

    @classmethod
    def prepare(cls, path: Path, *, resume: bool = False, start_over_failed: bool = False) -> Run:
        """A run folder made ready (refusing one holding another run unless resuming: RunDir.prepare)."""
        return cls(runs.RunDir(Path(path)).prepare(resume, start_over_failed=start_over_failed))

    @property
    def path(self) -> Path:
        return self.folder.path

    def resumable(self, resume: bool) -> bool:
        """True when --resume was given and the run has a last.pt to continue from."""
        return resume and self.folder.last.is_file()

    @contextmanager
    def lifecycle(self):
        """One process writes the folder at a time (core/locks.py: a second `train --resume` is turned
        away); status "running" while the block runs, train.log open; "interrupted" on Ctrl-C or SIGTERM
        (resumable), "failed" with the reason on any error."""
        with hold(self.folder.path, f"the run folder {self.path}", folder=True) if self.is_main else nullcontext():
            try:  # (a SIGTERM landing while "running" is written is caught too)
                if self.is_main:
                    for folder in (self.path, self.folder.checkpoints):  # of a run killed outright
                        remove_stale_temporaries(folder)
                    self.folder.mark(runs.RUNNING)
                with run_log(self.folder, enabled=self.is_main):
                    yield self
            except BaseException as exc:
                if self.is_main:
                    self._mark_stopped(exc)
                raise

    def _mark_stopped(self, exc: BaseException) -> None:
        if isinstance(exc, KeyboardInterrupt):  # Ctrl-C or SIGTERM (core/signals.py)
            self.folder.mark(runs.INTERRUPTED, reason=f"{signals.describe(exc)}: resume with --resume")
            exc.hint = "run the same command with --resume to continue"  # the CLI's interrupt line says it
            return
        reason = exc.message if isinstance(exc, SampleCNNError) else f"{type(exc).__name__}: {exc}"
        try:
            self.folder.mark(runs.FAILED, reason=reason[:300])
        except OSError:  # the status could not be written at all: the error itself says more
            pass

    def begin(self, config: dict, env: dict) -> None:
        """A new run (or one started over): config.toml, env.json, no metric lines."""
        if not self.is_main:
            return
        self.folder.truncate_metrics(0)  # a run killed before its first last.pt starts over
        config = {**config, "run_id": uuid.uuid4().hex}  # its checkpoints carry it (runs/folder.py)
        self.folder.write_config(config)
        runs.write_json(self.folder.env, env)
        log.info("config %s", json.dumps(config, default=str))

    def resume(self, state: TrainState) -> dict:
        """Continue from last.pt: the state as it was after its epoch; metrics.jsonl cut back to that
        epoch. Returns the checkpoint (its "best_state_dict" may repair a damaged best.pt)."""
        ckpt = runs.load_checkpoint(self.folder.last, map_location=str(state.precision.device))
        runs.check_identity(self.folder.read_config(), ckpt, self.folder.last, self.path)
        state.load_state_dict(ckpt)
        if "best_state_dict" not in ckpt:  # last.pt of an older version: the best weights are in best.pt only
            try:
                state.best = runs.load_checkpoint(self.folder.best, str(state.precision.device))["state_dict"]
            except RunError as exc:
                log.warning("%s; the weights of last.pt count as the best so far", exc.message)
        if self.is_main:
            self.folder.truncate_metrics(state.epoch)
            log.info("resumed from %s at epoch %d", self.folder.last, state.epoch)
        return ckpt

    def repair_best(self, state: TrainState, ckpt: dict) -> None:
        """Rewrite a damaged best.pt from last.pt's copy of the best weights (rank 0)."""
        if not (self.is_main and "best_state_dict" in ckpt and state.schedule.best_epoch):
            return
        if readable(self.folder.best):
            return
        log.warning("%s was damaged: rewritten from last.pt's copy of the best weights", self.folder.best)
        save = {k: ckpt[k] for k in ("label_names", "task", "sample_rate")}
        runs.save_checkpoint(self.folder.best, model_name=ckpt["model"]["name"], model_kwargs=ckpt["model"]["kwargs"],
                             state_dict=state.best, extra={"epoch": state.schedule.best_epoch}, **save)

    def hooks(self, console, save: dict, *, write_best: bool = True, before_checkpoints=()) -> list[Hook]:
        """The epoch line, metrics.jsonl and the checkpoints (rank 0; other ranks write nothing).
        `save`: the model's description every checkpoint carries (runs.save_checkpoint's arguments)."""
        if not self.is_main:
            return []
        return [ConsoleHook(console), MetricsHook(self.folder), *before_checkpoints,
                CheckpointHook(self.folder, save, write_best=write_best)]

    def finish(self, summary: dict) -> None:
        if self.is_main:
            self.folder.write_summary(summary)
            self.folder.mark(runs.DONE)


def readable(path: Path) -> bool:
    try:
        runs.load_checkpoint(path)
        return True
    except RunError:
        return False
