"""Everything a training run carries from epoch to epoch, with one state_dict (what last.pt holds).

model, optimizer (rebuilt by `new_optimizer` at the schedule's lr: the paper's recipe restarts
momentum at each lr decrease), schedule, precision (its scaler), epoch, seconds spent, the best
weights so far, and why the run stopped. `state_dict` also keeps the RNG states (torch's and a runner's
own generators), so a resumed run draws what the uninterrupted run would have drawn.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from samplecnn_cli.core.runtime import StepPrecision


@dataclass
class TrainState:
    model: torch.nn.Module  # the bare model (not the DDP wrapper): what checkpoints hold
    new_optimizer: Callable[[torch.nn.Module, float], torch.optim.Optimizer]
    schedule: object  # PaperSchedule, EarlyStopping... (see training/schedule.py)
    precision: StepPrecision
    epoch: int = 0
    seconds: float = 0.0
    stop_reason: str | None = None
    best: dict = field(default_factory=dict)  # the best weights so far (a copy of a state_dict)
    average: dict = field(default_factory=dict)  # --select swa: the running mean of epochs' weights
    averaged_epochs: list = field(default_factory=list)  # the epochs in `average`
    generators: dict = field(default_factory=dict)  # a runner's own torch.Generators (e.g. its shuffle)

    def __post_init__(self):
        self.optimizer = self.new_optimizer(self.model, self.schedule.lr)
        if not self.best:
            self.keep_best()

    def keep_best(self) -> None:
        self.best = copy.deepcopy(self.model.state_dict())

    def add_to_average(self) -> None:
        """Fold the current weights into `average` (floating-point entries; integer buffers: the latest)."""
        weights = self.model.state_dict()
        n = len(self.averaged_epochs) + 1
        if n == 1:
            self.average = {k: v.detach().clone() for k, v in weights.items()}
        else:
            for k, v in weights.items():
                if v.is_floating_point():
                    self.average[k] += (v.detach() - self.average[k]) / n
                else:
                    self.average[k] = v.detach().clone()
        self.averaged_epochs.append(self.epoch)

    def reload_best(self) -> None:
        """Back to the best weights with a fresh optimizer at the schedule's (new) lr."""
        self.model.load_state_dict(self.best)
        self.optimizer = self.new_optimizer(self.model, self.schedule.lr)

    def state_dict(self) -> dict:
        device = next(self.model.parameters()).device
        return {"epoch": self.epoch, "train_seconds": self.seconds, "stop_reason": self.stop_reason,
                "optimizer": self.optimizer.state_dict(), "schedule": self.schedule.state_dict(),
                "scaler": self.precision.state_dict(), "best_state_dict": self.best,
                "average_state_dict": self.average, "averaged_epochs": list(self.averaged_epochs),
                "rng": {"torch": torch.get_rng_state(),
                        "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
                        "generators": {name: g.get_state() for name, g in self.generators.items()}}}

    def load_state_dict(self, state: dict) -> None:
        """Continue from `state` (a last.pt payload; its "state_dict" holds the model's weights)."""
        self.model.load_state_dict(state["state_dict"])
        self.schedule.load_state_dict(state["schedule"])
        self.optimizer = self.new_optimizer(self.model, self.schedule.lr)
        self.optimizer.load_state_dict(state["optimizer"])
        self.precision.load_state_dict(state.get("scaler"))
        self.epoch, self.seconds = int(state["epoch"]), float(state["train_seconds"])
        self.stop_reason = state.get("stop_reason")
        if state.get("best_state_dict"):
            self.best = state["best_state_dict"]
        self.average = state.get("average_state_dict") or {}
        self.averaged_epochs = list(state.get("averaged_epochs") or [])
        torch.set_rng_state(state["rng"]["torch"])
        for name, generator_state in (state["rng"].get("generators") or {}).items():
            if name in self.generators:
                self.generators[name].set_state(generator_state)
        device = next(self.model.parameters()).device
        if device.type == "cuda" and state["rng"].get("cuda") is not None:
            torch.cuda.set_rng_state(state["rng"]["cuda"], device)
