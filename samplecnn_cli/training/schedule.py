"""The paper's learning-rate schedule, as the authors' code runs it.

lr starts at 0.01; when validation loss has not improved for `patience` (3) epochs the best weights
are reloaded and lr is divided by 5; after `decreases` (4) such steps (last lr 0.000016) the next
plateau ends training. The trainer acts on the decision `step()` returns.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

CONTINUE, DECREASE, STOP = "continue", "decrease", "stop"


@dataclass
class PaperSchedule:
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

    def state_dict(self) -> dict:
        return asdict(self)

    def load_state_dict(self, state: dict) -> None:
        for key, value in state.items():
            setattr(self, key, value)
