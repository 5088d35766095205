"""The paper's learning-rate schedule, as the authors' code runs it.

lr starts at 0.01; when validation loss has not improved for `patience` (3) epochs the best weights
are reloaded and lr is divided by 5; after `decreases` (4) such steps (last lr 0.000016) the next
plateau ends training. The trainer acts on the decision `step()` returns.

A schedule is what the epoch loop (training/loop.py) asks for: `lr` (read at the start of every
epoch and set on the optimizer, so a schedule may change it per epoch, e.g. cosine), `step(epoch,
valid_loss)` -> CONTINUE | DECREASE (reload the best weights, fresh optimizer at the new lr) | STOP,
`best_loss`, `best_epoch`, `decreases_done`, `stop_text()`, `state_dict()` / `load_state_dict()`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

CONTINUE, DECREASE, STOP = "continue", "decrease", "stop"


class _Fields:
    """state_dict / load_state_dict of a dataclass schedule: its fields, as plain values."""

    def state_dict(self) -> dict:
        return asdict(self)

    def load_state_dict(self, state: dict) -> None:
        for key, value in state.items():
            setattr(self, key, value)


@dataclass
class PaperSchedule(_Fields):
    lr: float = 0.01
    factor: float = 0.2
    patience: int = 3
    decreases: int = 4
    best_loss: float = float("inf")
    best_epoch: int = 0
    since_best: int = 0
    decreases_done: int = 0

    def step(self, epoch: int, valid_loss: float) -> str:
        """Record epoch `epoch`'s validation loss; say what the trainer must do next."""
        if valid_loss < self.best_loss:
            self.best_loss, self.best_epoch, self.since_best = float(valid_loss), epoch, 0
            return CONTINUE
        self.since_best += 1
        if self.since_best < self.patience:
            return CONTINUE
        if self.decreases_done >= self.decreases:
            return STOP
        self.decreases_done += 1
        self.lr *= self.factor
        self.since_best = 0
        return DECREASE

    def stop_text(self) -> str:
        return f"validation loss did not improve for {self.patience} epochs after {self.decreases} lr decreases"



@dataclass
class EarlyStopping(_Fields):
    """A constant lr and early stopping: STOP after `patience` epochs without a lower validation loss.

    What `samplecnn transfer` runs (Adam). The same interface as PaperSchedule (lr, best_loss,
    best_epoch, decreases_done, step, state_dict), which is all the epoch loop asks of a schedule."""

    lr: float = 1e-4
    patience: int = 10
    best_loss: float = float("inf")
    best_epoch: int = 0
    since_best: int = 0
    decreases_done: int = 0

    def step(self, epoch: int, valid_loss: float) -> str:
        if valid_loss < self.best_loss:
            self.best_loss, self.best_epoch, self.since_best = float(valid_loss), epoch, 0
            return CONTINUE
        self.since_best += 1
        return STOP if self.since_best >= self.patience else CONTINUE

    def stop_text(self) -> str:
        return f"validation loss did not improve for {self.patience} epochs"



@dataclass
class FixedSchedule(_Fields):
    """An lr that depends on the epoch alone - no reloading, no early stop; training runs `epochs` epochs.

    kind "step": `lr` times `factor` from each epoch listed in `steps` on (e.g. steps (10,): epochs 1-10
    at lr, 11- at lr * factor). kind "cosine": from `lr` down to `lr * final` along half a cosine over the
    epochs after warmup. Both start with `warmup` epochs rising linearly to `lr`. Epoch-wise lr is what
    the epoch loop sets; best_loss/best_epoch still track the lowest validation loss (best.pt)."""

    kind: str = "cosine"
    base_lr: float = 0.01
    epochs: int = 15
    factor: float = 0.2
    steps: tuple = ()
    warmup: int = 0
    final: float = 0.01
    best_loss: float = float("inf")
    best_epoch: int = 0
    epochs_done: int = 0

    @property
    def lr(self) -> float:
        """The lr of the next epoch."""
        return self.lr_at(self.epochs_done + 1)

    def lr_at(self, epoch: int) -> float:
        if epoch <= self.warmup:
            return self.base_lr * epoch / (self.warmup + 1)
        if self.kind == "step":
            return self.base_lr * self.factor ** sum(epoch > s for s in self.steps)
        span = max(1, self.epochs - self.warmup - 1)
        progress = min(1.0, (epoch - self.warmup - 1) / span)
        low = self.base_lr * self.final
        return low + (self.base_lr - low) * 0.5 * (1 + math.cos(math.pi * progress))

    @property
    def decreases_done(self) -> int:
        return sum(self.epochs_done >= s for s in self.steps) if self.kind == "step" else 0

    def step(self, epoch: int, valid_loss: float) -> str:
        if valid_loss < self.best_loss:
            self.best_loss, self.best_epoch = float(valid_loss), epoch
        self.epochs_done = epoch
        return STOP if epoch >= self.epochs else CONTINUE

    def stop_text(self) -> str:
        return f"{self.kind} schedule finished ({self.epochs} epochs)"

    def state_dict(self) -> dict:
        return {**asdict(self), "steps": list(self.steps)}

    def load_state_dict(self, state: dict) -> None:
        for key, value in state.items():
            setattr(self, key, tuple(value) if key == "steps" else value)
