"""The training configuration, with the paper's recipe (Section 5.2) as the defaults.

A run's config.toml holds every field of TrainConfig (see `to_dict`); `--resume` reads them all back
(`from_run`), so momentum, patience, lr factor... come from the run, not from today's defaults.
New training options are new fields here (with a default that keeps old runs' meaning), checked in
`validate`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace

from samplecnn_cli.errors import UsageError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DEVICES = ("auto", "cpu", "cuda")
# chosen on the machine that runs the job, so a resumed run takes them from the command line
MACHINE_FIELDS = ("device", "workers")


@dataclass
class TrainConfig:
    model: str
    epochs: int | None = None  # a cap on the schedule; None = until the schedule stops
    batch_size: int = 23  # per optimizer step, over all processes (MTAT batch in the paper)
    lr: float = 0.01
    momentum: float = 0.9  # SGD with Nesterov momentum
    weight_decay: float = 0.0
    lr_factor: float = 0.2  # lr divided by 5 ...
    patience: int = 3  # ... when validation loss has not improved for 3 epochs
    lr_decreases: int = 4  # 4 decreases in total; a plateau at the last lr stops training
    precision: str = "auto"  # auto = bf16 where the hardware has fast bf16, else fp32
    device: str = "auto"
    workers: int | None = None  # segment reader threads; None = 0 on CPU (read in the loop), 8 on CUDA
    seed: int = 0
    input_stats_segments: int = 512  # frame-mel: training segments sampled for the spectrogram mean/std
    model_overrides: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    def validate(self) -> TrainConfig:
        """Raise a UsageError for a value no run can use (before any folder is created)."""
        if self.epochs is not None and self.epochs < 1:
            raise UsageError("--epochs must be at least 1")
        if self.batch_size < 1 or self.lr <= 0:
            raise UsageError("--batch-size and --lr must be positive")
        if self.workers is not None and self.workers < 0:
            raise UsageError(f"--workers must be 0 or more, not {self.workers}",
                             hint="0 reads data in the training process")
        if not 0 < self.lr_factor < 1 or self.patience < 1 or self.lr_decreases < 0 or self.momentum < 0:
            raise UsageError("lr factor must be in (0, 1), patience at least 1, momentum and decreases >= 0")
        if self.precision not in PRECISIONS:
            raise UsageError(f"unknown precision '{self.precision}'", hint="use fp32, bf16 or fp16 (or auto)")
        if self.device not in DEVICES and not self.device.startswith("cuda:"):
            raise UsageError(f"unknown device '{self.device}'", hint="use auto, cpu or cuda")
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
