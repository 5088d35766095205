"""What every waveform model shares: input shape handling, the head, intermediates and a layer table.

Every model is   front end -> n conv modules -> conv 1x1 (512) + BN + ReLU -> dropout -> dense (logits).
Subclasses build `self.front` (one or more layers) and `self.modules_` (nn.ModuleList); this class adds
the head and exposes, in one forward pass, the logits, the last three hidden layers (module n-1,
module n, the 1x1 conv; each (B, C, T)) and the embedding (the 1x1 conv output, (B, 512)).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

EMBEDDING_CHANNELS = 512


class ModelOutput(NamedTuple):
    logits: torch.Tensor  # (B, num_outputs)
    hidden: list[torch.Tensor]  # last three hidden layers, ordered -3, -2, -1; each (B, C, T)
    embedding: torch.Tensor  # (B, 512): the last hidden layer averaged over time


def conv_bn_relu(in_channels: int, out_channels: int, kernel: int, stride: int = 1,
                 padding: int | str = 0) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv1d(in_channels, out_channels, kernel, stride=stride, padding=padding),
        nn.BatchNorm1d(out_channels),
        nn.ReLU(inplace=True),
    )


class ConvModule(nn.Sequential):
    """[conv (filter k, stride 1, same padding) -> BN -> ReLU -> max-pool p]: one module of the paper."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, pool: int):
        # "same" padding; an even filter pads one more sample on the right, as padding="same" does,
        # but explicitly (padding="same" with an even filter copies the input and warns).
        layers = [] if kernel % 2 else [nn.ConstantPad1d(((kernel - 1) // 2, kernel // 2), 0.0)]
        conv = nn.Conv1d(in_channels, out_channels, kernel, padding=kernel // 2 if kernel % 2 else 0)
        super().__init__(*layers, conv, nn.BatchNorm1d(out_channels), nn.ReLU(inplace=True), nn.MaxPool1d(pool))
        self.kernel, self.pool, self.out_channels = kernel, pool, out_channels

    @property
    def conv(self) -> nn.Conv1d:
        return self[-4]


def channel_plan(stages: int) -> list[int]:
    """Channels of `stages` conv stages (front end + modules), as in Table 1 and generalised.

    Table 1 (10 stages): 128,128,128,256,256,256,256,256,512,512. Rule: the last two stages have 512,
    the first three 128, the rest 256; with fewer than five stages the 512s win.
    """
    plan = [256] * stages
    for i in range(min(3, stages)):
        plan[i] = 128
    for i in range(max(0, stages - 2), stages):
        plan[i] = 512
    return plan


class WaveformClassifier(nn.Module):
    """Base class. Subclasses set self.front, self.modules_, and call self._build_head(in_channels)."""

    family: str = ""

    def __init__(self, *, name: str, input_samples: int, sample_rate: int, num_outputs: int, dropout: float):
        super().__init__()
        if num_outputs < 1:
            raise ValueError("num_outputs must be at least 1")
        if not 0.0 <= dropout < 1.0:
            raise ValueError("dropout must be in [0, 1)")
        self.name = name
        self.input_samples = int(input_samples)
        self.sample_rate = int(sample_rate)
        self.num_outputs = int(num_outputs)
        self.dropout_rate = float(dropout)

    def _build_head(self, in_channels: int) -> None:
        self.conv_last = conv_bn_relu(in_channels, EMBEDDING_CHANNELS, 1)
        self.dropout = nn.Dropout(self.dropout_rate)
        self.classifier = nn.Linear(EMBEDDING_CHANNELS, self.num_outputs)

    # -- forward --------------------------------------------------------------------------------
    @staticmethod
    def _as_batch(x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:
            return x.unsqueeze(1)
        if x.dim() == 3 and x.shape[1] == 1:
            return x
        raise ValueError(f"expected input (batch, samples) or (batch, 1, samples), got {tuple(x.shape)}")

    def forward_front(self, x: torch.Tensor) -> torch.Tensor:
        return self.front(x)

    def forward_all(self, x: torch.Tensor) -> ModelOutput:
        """Logits, the last three hidden layers and the embedding, from one pass."""
        outputs = self.forward_intermediates(x)
        embedding = outputs[-1].mean(dim=-1)
        logits = self.classifier(self.dropout(embedding))
        return ModelOutput(logits=logits, hidden=outputs[-3:], embedding=embedding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_all(x).logits

    def forward_intermediates(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Every stage's output (front end, each module, the 1x1 conv), bottom to top."""
        h = self.forward_front(self._as_batch(x))
        outputs = [h]
        for module in self.modules_:
            h = module(h)
            outputs.append(h)
        outputs.append(self.conv_last(h))
        return outputs

    def conv_layers(self) -> list[nn.Module]:
        """The conv stages in order, front end first: what filter visualisation indexes as layer 1..n+1."""
        return [self.front, *self.modules_]

    # -- description ----------------------------------------------------------------------------
    @property
    def feature_info(self) -> list[dict]:
        """Per hidden layer: name, channels and time reduction (input samples per output step)."""
        info, reduction = [], self.front_reduction
        info.append({"module": "front", "num_chs": self.front_channels, "reduction": reduction})
        for i, module in enumerate(self.modules_, start=1):
            reduction *= module.pool
            info.append({"module": f"modules_.{i - 1}", "num_chs": module.out_channels, "reduction": reduction})
        info.append({"module": "conv_last", "num_chs": EMBEDDING_CHANNELS, "reduction": reduction})
        return info

    def layer_table(self) -> list[dict]:
        """Rows shaped like Table 1: layer, stride, output length x channels, params (conv/dense w+b)."""
        rows = self._front_rows()
        length = self.input_samples // self.front_reduction
        for module in self.modules_:
            length //= module.pool
            conv = module.conv
            rows.append({
                "layer": f"conv {module.kernel}-{module.out_channels}, maxpool {module.pool}",
                "stride": f"1, {module.pool}", "output_length": length, "channels": module.out_channels,
                "params": _weights_and_bias(conv),
            })
        rows.append({"layer": f"conv 1-{EMBEDDING_CHANNELS}, dropout {self.dropout_rate:g}", "stride": "1",
                     "output_length": length, "channels": EMBEDDING_CHANNELS,
                     "params": _weights_and_bias(self.conv_last[0])})
        rows.append({"layer": f"dense {self.num_outputs} (logits)", "stride": "", "output_length": None,
                     "channels": self.num_outputs, "params": _weights_and_bias(self.classifier)})
        return rows

    def num_params(self, trainable_only: bool = True) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)


def _weights_and_bias(layer: nn.Module) -> int:
    return sum(p.numel() for p in (layer.weight, layer.bias) if p is not None)
