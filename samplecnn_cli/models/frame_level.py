"""Frame-level baselines (Section 3.1-3.2, Table 2): a mel spectrogram or a strided conv on raw
samples as the first layer, then the same conv modules (filter 3, max-pool 3) as SampleCNN.

window W, hop H, input T = 59,049: the front end yields T / H frames (= 3^n), and n modules of
pool 3 bring them to 1. The signal is padded by W - H (or n_fft - H) so every frame is whole.
"""

from __future__ import annotations

import math
import re

import torch
from torch import nn

from samplecnn_cli.models.base import ConvModule, WaveformClassifier, channel_plan, conv_bn_relu
from samplecnn_cli.models.mel import MelSpectrogram
from samplecnn_cli.models.registry import BadName, ModelFamily, ModelSpec, register_family

INPUT_SAMPLES = 59049  # 3^10: every frame-level name has this input
N_FFT = 729  # 3^6, the paper's FFT size; shorter windows are zero-padded to it
BANDS = 128
LOG_C = 10.0  # log(1 + C|A|)


def modules_for(input_samples: int, hop: int) -> int:
    """n such that hop * 3^n == input_samples; ValueError when there is none."""
    if hop < 1 or input_samples % hop:
        raise ValueError(f"hop {hop} does not divide the input of {input_samples} samples")
    frames = input_samples // hop
    n = round(math.log(frames, 3)) if frames > 1 else 0
    if n < 1 or 3 ** n != frames:
        raise ValueError(f"input {input_samples} / hop {hop} = {frames} frames is not a power of 3 (>= 3)")
    return n


class _FrameLevel(WaveformClassifier):
    def __init__(self, *, name: str, window: int, hop: int, input_samples: int, sample_rate: int,
                 num_outputs: int, dropout: float):
        if window < hop:
            raise ValueError(f"window {window} is shorter than hop {hop}: frames would skip samples")
        n = modules_for(input_samples, hop)
        super().__init__(name=name, input_samples=input_samples, sample_rate=sample_rate,
                         num_outputs=num_outputs, dropout=dropout)
        self.window, self.hop, self.num_modules = window, hop, n
        channels = channel_plan(n + 1)
        channels[0] = BANDS  # the front end always has 128 bands / filters
        self.front_reduction, self.front_channels = hop, BANDS
        self.modules_ = nn.ModuleList(ConvModule(channels[i - 1], channels[i], 3, 3) for i in range(1, n + 1))
        self._build_head(channels[-1])

    def _pad(self, x: torch.Tensor, frame: int) -> torch.Tensor:
        extra = frame - self.hop
        return nn.functional.pad(x, (extra // 2, extra - extra // 2))


class FrameLevelRaw(_FrameLevel):
    """Strided conv (filter = window, stride = hop, 128 filters) + BN + ReLU on raw samples."""

    family = "frame-raw"

    def __init__(self, window: int, hop: int, *, name: str = "", input_samples: int = 59049,
                 sample_rate: int = 22050, num_outputs: int = 50, dropout: float = 0.5):
        super().__init__(name=name or f"frame-raw-{window}x{hop}", window=window, hop=hop,
                         input_samples=input_samples, sample_rate=sample_rate, num_outputs=num_outputs,
                         dropout=dropout)
        self.front = conv_bn_relu(1, BANDS, window, stride=hop)

    def forward_front(self, x: torch.Tensor) -> torch.Tensor:
        return self.front(self._pad(x, self.window))

    def _front_rows(self) -> list[dict]:
        conv = self.front[0]
        return [{"layer": f"conv {self.window}-{BANDS}", "stride": str(self.hop),
                 "output_length": self.input_samples // self.hop, "channels": BANDS,
                 "params": conv.weight.numel() + conv.bias.numel()}]


class MelFrontEnd(nn.Module):
    """log(1 + 10 |mel|) with FFT 729 (window zero-padded), normalised by training-data mean/std."""

    def __init__(self, window: int, hop: int, sample_rate: int):
        super().__init__()
        if window > N_FFT:
            raise ValueError(f"mel window {window} is longer than the FFT size {N_FFT}")
        self.hop = hop
        self.mel = MelSpectrogram(sample_rate=sample_rate, n_fft=N_FFT, win_length=window, hop_length=hop,
                                  n_mels=BANDS)
        # Set from the training data by the trainer (set_input_stats); identity until then.
        self.register_buffer("input_mean", torch.zeros(()))
        self.register_buffer("input_std", torch.ones(()))

    def spectrogram(self, x: torch.Tensor) -> torch.Tensor:
        """Un-normalised log-mel (B, 128, frames) of x (B, 1, T) already padded."""
        with torch.autocast(device_type=x.device.type, enabled=False):  # STFT wants fp32
            return torch.log1p(LOG_C * self.mel(x.float().squeeze(1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.spectrogram(x) - self.input_mean) / self.input_std


class FrameLevelMel(_FrameLevel):
    """The frame-level mel-spectrogram model: 128 mel bands, then the conv modules."""

    family = "frame-mel"

    def __init__(self, window: int, hop: int, *, name: str = "", input_samples: int = 59049,
                 sample_rate: int = 22050, num_outputs: int = 50, dropout: float = 0.5):
        super().__init__(name=name or f"frame-mel-{window}x{hop}", window=window, hop=hop,
                         input_samples=input_samples, sample_rate=sample_rate, num_outputs=num_outputs,
                         dropout=dropout)
        self.front = MelFrontEnd(window, hop, sample_rate)

    def forward_front(self, x: torch.Tensor) -> torch.Tensor:
        return self.front(self._pad(x, N_FFT))

    def spectrogram(self, x: torch.Tensor) -> torch.Tensor:
        """Un-normalised log-mel of a batch of waveforms: what input statistics are computed from."""
        return self.front.spectrogram(self._pad(self._as_batch(x), N_FFT))

    def set_input_stats(self, mean: float, std: float) -> None:
        self.front.input_mean.fill_(float(mean))
        self.front.input_std.fill_(max(float(std), 1e-8))

    def _front_rows(self) -> list[dict]:
        return [{"layer": f"mel {BANDS} (FFT {N_FFT}, window {self.window})", "stride": str(self.hop),
                 "output_length": self.input_samples // self.hop, "channels": BANDS, "params": 0}]


class _FrameFamily(ModelFamily):
    """frame-KIND-W (hop = window) and frame-KIND-WxH, on a 59,049-sample input."""

    kind = ""
    model: type[_FrameLevel]

    def parse(self, base: str) -> ModelSpec | None:
        m = re.match(rf"^frame-{self.kind}-(\d+)(?:x(\d+))?$", base)
        if m is None:
            return None
        window = int(m.group(1))
        hop = int(m.group(2) or window)
        if window < hop:
            raise BadName(f"window {window} is shorter than hop {hop}")
        if self.kind == "mel" and window > N_FFT:
            raise BadName(f"the mel window must be at most the FFT size {N_FFT}")
        try:
            modules_for(INPUT_SAMPLES, hop)
        except ValueError:
            raise BadName(f"hop {hop} must be a power of 3 dividing {INPUT_SAMPLES:,} "
                          "(3, 9, 27, 81, 243, 729, ...)") from None
        canonical = f"frame-{self.kind}-{window}" if window == hop else f"frame-{self.kind}-{window}x{hop}"
        return ModelSpec(self.name, canonical, window=window, hop=hop)

    def build(self, spec: ModelSpec, **kwargs) -> _FrameLevel:
        return self.model(spec.window, spec.hop, name=spec.canonical, **kwargs)


@register_family
class FrameMelFamily(_FrameFamily):
    name, kind, model = "frame-mel", "mel", FrameLevelMel


@register_family
class FrameRawFamily(_FrameFamily):
    name, kind, model = "frame-raw", "raw", FrameLevelRaw
