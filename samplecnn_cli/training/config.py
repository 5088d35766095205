"""The training configuration, with the paper's recipe (Section 5.2) as the defaults."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DEVICES = ("auto", "cpu", "cuda")


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
    workers: int | None = None  # DataLoader workers; None = 0 on CPU, up to 8 on CUDA
    seed: int = 0
    input_stats_segments: int = 512  # frame-mel: training segments sampled for the spectrogram mean/std
    model_overrides: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)
