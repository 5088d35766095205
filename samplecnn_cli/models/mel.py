"""A magnitude mel spectrogram in plain torch: the frame-level baseline's front end.

Same definition as torchaudio's `MelSpectrogram(power=1, center=False)` defaults (periodic Hann window
of `win_length` centred in `n_fft`, one-sided |STFT|, HTK mel scale, triangular filters without area
normalisation), so models trained when torchaudio computed it load and predict the same. Kept here so
that the toolkit needs no compiled torchaudio library, whose releases are tied to one torch release.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def hz_to_mel(hz: float) -> float:
    return 2595.0 * math.log10(1.0 + hz / 700.0)


def mel_to_hz(mel: torch.Tensor) -> torch.Tensor:
    return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)


def mel_filterbank(n_freqs: int, n_mels: int, sample_rate: int, f_min: float = 0.0,
                   f_max: float | None = None) -> torch.Tensor:
    """(n_freqs, n_mels) triangular filters on the HTK mel scale, peak 1 (no area normalisation).

    Computed in float32 like torchaudio's, so the filters are the same to the last bit or two.
    """
    f_max = sample_rate / 2 if f_max is None else f_max
    bins_hz = torch.linspace(0, sample_rate // 2, n_freqs)
    hz_edges = mel_to_hz(torch.linspace(hz_to_mel(f_min), hz_to_mel(f_max), n_mels + 2))
    widths = hz_edges[1:] - hz_edges[:-1]  # (n_mels + 1,)
    slopes = hz_edges.unsqueeze(0) - bins_hz.unsqueeze(1)  # (n_freqs, n_mels + 2)
    rising = -slopes[:, :-2] / widths[:-1]
    falling = slopes[:, 2:] / widths[1:]
    return torch.clamp(torch.minimum(rising, falling), min=0.0)


class _MagnitudeStft(nn.Module):
    def __init__(self, n_fft: int, win_length: int, hop_length: int):
        super().__init__()
        self.n_fft, self.win_length, self.hop_length = n_fft, win_length, hop_length
        self.register_buffer("window", torch.hann_window(win_length))

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        return torch.stft(waveform, self.n_fft, self.hop_length, self.win_length, self.window, center=False,
                          return_complex=True).abs()


class _MelScale(nn.Module):
    def __init__(self, n_freqs: int, n_mels: int, sample_rate: int):
        super().__init__()
        self.register_buffer("fb", mel_filterbank(n_freqs, n_mels, sample_rate))

    def forward(self, spectrogram: torch.Tensor) -> torch.Tensor:
        return torch.matmul(spectrogram.transpose(-1, -2), self.fb).transpose(-1, -2)


class MelSpectrogram(nn.Module):
    """|STFT| (power 1, no centring) of (batch, time) mapped to n_mels bands: (batch, n_mels, frames).

    Its state_dict keys (`spectrogram.window`, `mel_scale.fb`) are torchaudio's, so checkpoints
    written while torchaudio computed the front end load unchanged, and the other way round.
    """

    def __init__(self, sample_rate: int, n_fft: int, win_length: int, hop_length: int, n_mels: int):
        super().__init__()
        self.spectrogram = _MagnitudeStft(n_fft, win_length, hop_length)
        self.mel_scale = _MelScale(n_fft // 2 + 1, n_mels, sample_rate)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        return self.mel_scale(self.spectrogram(waveform))
