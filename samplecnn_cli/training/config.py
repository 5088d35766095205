"""The training configuration, with the paper's recipe (Section 5.2) as the defaults.

A run's config.toml holds every field of TrainConfig (see `to_dict`); `--resume` reads them all back
(`from_run`), so momentum, patience, lr factor... come from the run, not from today's defaults.
New training options are new fields here (with a default that keeps old runs' meaning), checked in
`validate`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace

from samplecnn_cli.core.errors import UsageError
from samplecnn_cli.core.runtime import check_device, check_precision

SCHEDULES = ("plateau", "step", "cosine")
SAMPLINGS = ("grid", "random")
OPTIMIZERS = ("sgd", "adamw")
SELECTS = ("best", "last", "swa")  # which weights become best.pt (what evaluate/tag/export use)
TRAIN_SPLITS = ("train", "valid")
# chosen on the machine that runs the job, so a resumed run takes them from the command line
MACHINE_FIELDS = ("device", "workers")


@dataclass(kw_only=True)
class RunOptions:
    """What every kind of run takes (train's TrainConfig, transfer's TransferOptions): its seed, and where
    and at which precision it runs, in core/runtime.py's words (resolved there, once)."""

    seed: int = 0
    device: str = "auto"
    precision: str = "auto"  # auto = bf16 where the hardware runs it natively, else fp32

    def check_runtime(self) -> None:
        check_device(self.device)
        check_precision(self.precision)


@dataclass(kw_only=True)
class TrainConfig(RunOptions):
    model: str
    epochs: int | None = None  # a cap on the schedule; None = until the schedule stops
    batch_size: int = 23  # per optimizer step, over all processes (MTAT batch in the paper)
    lr: float = 0.01
    momentum: float = 0.9  # SGD with Nesterov momentum
    weight_decay: float = 0.0
    lr_factor: float = 0.2  # lr divided by 5 ...
    patience: int = 3  # ... when validation loss has not improved for 3 epochs
    lr_decreases: int = 4  # 4 decreases in total; a plateau at the last lr stops training
    # The fields below default to the paper's recipe, so runs written before they existed keep their meaning;
    # `samplecnn train` fills them from a named recipe (RECIPES) unless given one by one.
    recipe: str = "paper"  # the named recipe the options below started from (RECIPES)
    schedule: str = "plateau"  # plateau (the paper's) | step (x lr_factor at lr_steps) | cosine
    lr_steps: list = field(default_factory=list)  # step: the epochs after which lr is multiplied by lr_factor
    warmup_epochs: int = 0  # step/cosine: epochs of linear lr warm-up
    optimizer: str = "sgd"  # sgd (Nesterov, `momentum`) | adamw
    sampling: str = "grid"  # grid: the paper's fixed non-overlapping segments | random offsets every epoch
    # best: the epoch with the lowest validation loss | last: the final epoch's weights | swa: the mean of
    # the last `swa_epochs` epochs' weights, batch-norm statistics recomputed on the training segments
    select: str = "best"
    swa_epochs: int = 5
    # the splits trained on; ["train", "valid"]: validation is still reported, but is no longer held out
    train_splits: list = field(default_factory=lambda: ["train"])
    workers: int | None = None  # segment reader threads; None = 0 on CPU (read in the loop), 8 on CUDA
    input_stats_segments: int = 512  # frame-mel: training segments sampled for the spectrogram mean/std
    model_overrides: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        values = asdict(self)
        return {"model": values.pop("model"), **values}

    def validate(self) -> TrainConfig:
        """Raise a UsageError for a value no run can use (before any folder is created)."""
        if self.epochs is not None and self.epochs < 1:
            raise UsageError("--epochs must be at least 1")
        if self.batch_size < 1 or not 0 < self.lr < float("inf"):  # also refuses nan
            raise UsageError("--batch-size and --lr must be positive")
        if self.workers is not None and self.workers < 0:
            raise UsageError(f"--workers must be 0 or more, not {self.workers}",
                             hint="0 reads data in the training process")
        if not 0 < self.lr_factor < 1 or self.patience < 1 or self.lr_decreases < 0 or self.momentum < 0:
            raise UsageError("lr factor must be in (0, 1), patience at least 1, momentum and decreases >= 0")
        self.check_runtime()
        for name, value, allowed in (("schedule", self.schedule, SCHEDULES), ("sampling", self.sampling, SAMPLINGS),
                                     ("optimizer", self.optimizer, OPTIMIZERS)):
            if value not in allowed:
                raise UsageError(f"unknown {name} '{value}'", hint=f"use one of: {', '.join(allowed)}")
        if self.schedule != "plateau" and self.epochs is None:
            raise UsageError(f"the {self.schedule} schedule needs --epochs (it sets the lr by epoch)")
        if self.warmup_epochs < 0 or any(int(s) < 1 for s in self.lr_steps):
            raise UsageError("--warmup-epochs must be >= 0 and --lr-steps epochs >= 1")
        if self.select not in SELECTS:
            raise UsageError(f"unknown --select '{self.select}'", hint=f"use one of: {', '.join(SELECTS)}")
        if self.select == "swa" and (self.schedule == "plateau" or not 1 <= self.swa_epochs <= self.epochs):
            raise UsageError("--select swa needs a step or cosine schedule and 1 <= --swa-epochs <= --epochs",
                             hint="the average covers the schedule's last --swa-epochs epochs")
        splits = list(self.train_splits)
        if "train" not in splits or any(s not in TRAIN_SPLITS for s in splits) or len(set(splits)) != len(splits):
            raise UsageError(f"--train-splits must be train or train,valid, not '{','.join(map(str, splits))}'")
        return self

    @classmethod
    def from_run(cls, saved: dict, given: TrainConfig) -> TrainConfig:
        """The config of a run being resumed: every field from its config.toml, except the machine's
        (device, workers) and an --epochs cap given now, which come from `given`."""
        names = {f.name for f in fields(cls)}
        values = {k: v for k, v in saved.items() if k in names}
        values["precision"] = saved.get("precision_requested", values.get("precision", given.precision))
        values.update({k: getattr(given, k) for k in MACHINE_FIELDS})
        if given.epochs is not None:
            values["epochs"] = given.epochs
        values["model_overrides"] = {**saved.get("model_overrides", {}), **given.model_overrides}
        return replace(cls(model=saved["model"]), **values)


# Named recipes: the option values `samplecnn train --recipe NAME` starts from (options given one by
# one win). "paper": Section 5.2 exactly, right for MTAT-sized data (15k clips, 1.5k validation clips).
# "default": chosen by measurement on small real datasets (docs/training.md, issues 10 and 22): every labelled
# clip trained on (train + valid) and the last epoch kept, since on a few hundred clips the 10% carve cost more
# accuracy than selecting by its validation loss gave (the lowest loss fell on the last two epochs anyway).
RECIPES: dict[str, dict] = {
    "paper": {"schedule": "plateau", "sampling": "grid", "optimizer": "sgd", "lr": 0.01, "weight_decay": 0.0,
              "epochs": None, "lr_steps": [], "warmup_epochs": 0, "select": "best", "train_splits": ["train"]},
    "default": {"schedule": "cosine", "sampling": "random", "optimizer": "adamw", "lr": 0.001,
                "weight_decay": 0.01, "epochs": 30, "lr_steps": [], "warmup_epochs": 0, "select": "last",
                "train_splits": ["train", "valid"]},
}


def recipe_options(name: str, given: dict) -> dict:
    """The recipe's values, overridden by the options that were given (not None)."""
    if name not in RECIPES:
        raise UsageError(f"unknown recipe '{name}'", hint=f"use one of: {', '.join(RECIPES)}")
    return {**RECIPES[name], **{k: v for k, v in given.items() if v is not None}}


def describe(cfg: TrainConfig) -> str:
    """One line saying what the run's recipe does (config.toml's "recipe_description")."""
    opt = (f"SGD Nesterov momentum {cfg.momentum:g}" if cfg.optimizer == "sgd"
           else f"AdamW weight decay {cfg.weight_decay:g}")
    if cfg.schedule == "plateau":
        lr = (f"lr {cfg.lr:g} / {1 / cfg.lr_factor:g} after {cfg.patience} epochs without validation improvement, "
              f"best weights reloaded; a plateau after {cfg.lr_decreases} decreases stops")
    elif cfg.schedule == "step":
        lr = f"lr {cfg.lr:g} x {cfg.lr_factor:g} after epochs {list(cfg.lr_steps)}, {cfg.epochs} epochs"
    else:
        lr = f"lr {cfg.lr:g} cosine to 1% over {cfg.epochs} epochs"
    warm = f", {cfg.warmup_epochs} warm-up epoch(s)" if cfg.warmup_epochs else ""
    segments = "fixed non-overlapping segments" if cfg.sampling == "grid" else "segments at random offsets each epoch"
    if "valid" in cfg.train_splits:
        segments += " of train + valid (validation not held out)"
    select = {"best": "", "last": "; the last epoch's weights",
              "swa": f"; the mean of the last {cfg.swa_epochs} epochs' weights (batch norm recomputed)"}[cfg.select]
    return f"{opt}; {lr}{warm}; {segments}{select}"
