"""Sample-level SampleCNN (Section 3.3, Table 1, Table 3).

`filters` lists every stage's filter size, bottom to top: the first is the strided first conv
(filter = stride), each next one a module [conv k, stride 1, same padding -> BN -> ReLU -> max-pool k].
m^n is filters = [m] * (n + 1); Table 3's configs mix sizes. Input samples = product of the filters.
"""

from __future__ import annotations

import math
import re

from torch import nn

from samplecnn_cli.models.base import ConvModule, WaveformClassifier, channel_plan, conv_bn_relu
from samplecnn_cli.models.registry import BadName, ModelFamily, ModelSpec, register_family


class SampleCNN(WaveformClassifier):
    family = "sample"

    def __init__(self, filters: list[int], *, name: str = "", num_outputs: int = 50, sample_rate: int = 22050,
                 dropout: float = 0.5):
        filters = [int(f) for f in filters]
        if len(filters) < 2 or any(f < 2 for f in filters):
            raise ValueError("a sample-level model needs a first conv and at least one module, each of size >= 2")
        super().__init__(name=name or "sample-" + "-".join(map(str, filters)), input_samples=math.prod(filters),
                         sample_rate=sample_rate, num_outputs=num_outputs, dropout=dropout)
        self.filters = filters
        channels = channel_plan(len(filters))
        self.front = conv_bn_relu(1, channels[0], filters[0], stride=filters[0])
        self.front_reduction, self.front_channels = filters[0], channels[0]
        self.modules_ = nn.ModuleList(ConvModule(channels[i - 1], channels[i], filters[i], filters[i])
                                      for i in range(1, len(filters)))
        self._build_head(channels[-1])

    def _front_rows(self) -> list[dict]:
        conv = self.front[0]
        return [{"layer": f"conv {self.filters[0]}-{self.front_channels}", "stride": str(self.filters[0]),
                 "output_length": self.input_samples // self.filters[0], "channels": self.front_channels,
                 "params": conv.weight.numel() + conv.bias.numel()}]


@register_family
class SampleLevelFamily(ModelFamily):
    """sample-M^N (or sample-MpowN), sample-SxM^N and sample-D-D-..-D (see registry.py)."""

    name = "sample"
    POWER = re.compile(r"^sample-(?:(\d+)x)?(\d+)(?:\^|pow)(\d+)$")
    DIGITS = re.compile(r"^sample-(\d+(?:-\d+)+)$")

    def parse(self, base: str) -> ModelSpec | None:
        if m := self.POWER.match(base):
            first, m_size, n = int(m.group(1) or m.group(2)), int(m.group(2)), int(m.group(3))
            if not 2 <= m_size <= 9:
                raise BadName(f"filter size m={m_size} is outside 2..9")
            if not 1 <= n <= 20:
                raise BadName(f"n={n} modules is outside 1..20")
            if not 2 <= first <= 729:
                raise BadName(f"first conv {first} is outside 2..729")
            return self.spec((first, *([m_size] * n)))
        if m := self.DIGITS.match(base):
            return self.spec(tuple(int(d) for d in m.group(1).split("-")))
        return None

    def spec(self, filters: tuple[int, ...]) -> ModelSpec:
        if any(f < 2 for f in filters):
            raise BadName("every filter size must be at least 2")
        if len(filters) > 21 or math.prod(filters) > 1 << 22:
            raise BadName(f"input of {math.prod(filters):,} samples is too large")
        rest = filters[1:]
        if len(set(rest)) == 1:
            m, n = rest[0], len(rest)
            canonical = f"sample-{m}^{n}" if filters[0] == m else f"sample-{filters[0]}x{m}^{n}"
        else:
            canonical = "sample-" + "-".join(map(str, filters))
        return ModelSpec(self.name, canonical, filters=filters)

    def build(self, spec: ModelSpec, **kwargs) -> SampleCNN:
        return SampleCNN(list(spec.filters), name=spec.canonical, **kwargs)
