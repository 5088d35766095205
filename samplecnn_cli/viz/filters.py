"""What a conv filter responds to: gradient ascent from noise (Section 7.1) and the spectra of the results.

Layer numbering: layer 1 is the first conv stage (the strided conv of sample-level and frame-level raw
models), layer k the k-th conv stage (`model.conv_layers()` in order). The quantity maximised is a
filter's mean response over time *after batch normalisation, before ReLU and max-pooling*: BN is a
per-channel affine map, so this is the filter's (signed) conv output, and unlike the post-ReLU value it
still has a gradient when the filter is silent on the starting noise. Earlier stages run in full.

Spectra are magnitudes of the FFT of each mean-removed waveform, from 0 to sr/2; `peak_hz` is the
frequency of the largest bin, and filters are sorted by it (Figure 3).

Layer 1 is read from its weights by default (`weight_response`), not by gradient ascent: the strided
first conv (filter = stride = m in sample-level models) is linear up to its ReLU (conv, then BN: an
affine map per channel), so the ascent's gradient is the filter itself tiled with period m, and the
result's spectrum has energy only at multiples of sr/m: 0 and sr/3 for m = 3, one line at sr/3 once the
mean is removed, whatever the filter learned. The filter's own frequency response |H(f)| is what it
passes, so that is the informative picture of layer 1. The layers above, with ReLU and pooling in
between, are where gradient ascent shows bands.

Frame-level mel models have no learned filter at layer 1 (it is the mel spectrogram): asking for it is
a UsageError; layers 2.. are their conv modules, numbered as for the other families.

All filters of a layer are optimised in one batch: input i of the batch belongs to filter i, and since
the model is in eval mode (BN uses running statistics) the inputs do not interact.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from samplecnn_cli.core.errors import UsageError

DEFAULT_INPUT_SAMPLES = 729
RESPONSE_FFT = 1024  # zero-padded FFT length for the frequency response of layer 1's weights
METHODS = ("auto", "weights", "ascent")
DEFAULT_STEPS = 18
DEFAULT_STEP_SIZE = 1.0
NOISE_STD = 0.1  # starting noise, small against the accumulated steps (each step has RMS = step size)
MAX_BATCH_SAMPLES = 1 << 21  # filters per chunk x input samples: bounds activation memory


@dataclass
class LayerFilters:
    """The gradient-ascent result of one layer; `order` sorts filters by the frequency of their peak."""

    layer: int
    sample_rate: int
    input_samples: int
    filters: list[int]  # filter (channel) indices, as optimised
    waveforms: np.ndarray  # (F, input_samples)
    freqs_hz: np.ndarray  # (K,) from 0 to sample_rate / 2
    spectra: np.ndarray  # (F, K) magnitude
    peak_hz: np.ndarray  # (F,)
    order: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))  # positions into `filters`
    method: str = "ascent"  # "ascent" (waveforms are optimised inputs) or "weights" (waveforms are the taps)
    stride: int = 0  # layer 1's stride (what limits gradient ascent there); 0 for mel front ends

    def sorted_rows(self) -> list[dict]:
        """One dict per filter, in the sorted (peak frequency) order."""
        return [{"layer": self.layer, "rank": rank, "filter": int(self.filters[i]),
                 "peak_hz": round(float(self.peak_hz[i]), 3),
                 "rms": round(float(np.sqrt(np.mean(self.waveforms[i] ** 2))), 6)}
                for rank, i in enumerate(self.order)]


# -- parsing ---------------------------------------------------------------------------------------
def parse_layers(spec: str, num_layers: int) -> list[int]:
    """'4', '1,2,3', '1-4', 'all' (and mixes like '1-3,6') -> sorted layer numbers in 1..num_layers."""
    text = str(spec).strip().lower()
    if text == "all":
        return list(range(1, num_layers + 1))
    layers: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        try:
            if "-" in part:
                lo, hi = (int(x) for x in part.split("-", 1))
                if lo > hi:
                    raise ValueError
                layers.update(range(lo, hi + 1))
            else:
                layers.add(int(part))
        except ValueError:
            raise UsageError(f"bad --layer '{spec}'",
                             hint="use a number (4), a list (1,2,3), a range (1-4) or 'all'") from None
    bad = sorted(n for n in layers if not 1 <= n <= num_layers)
    if bad:
        raise UsageError(f"layer {bad[0]} does not exist: the model has conv layers 1..{num_layers}",
                         hint=f"use --layer 1-{num_layers} or --layer all")
    return sorted(layers)


def parse_filters(spec: str | None, num_filters: int) -> list[int]:
    """'all' (or None) or '0,5,7' (0-based channel indices) -> list of filter indices."""
    if spec is None or str(spec).strip().lower() == "all":
        return list(range(num_filters))
    try:
        chosen = sorted({int(x) for x in str(spec).split(",") if x.strip()})
    except ValueError:
        raise UsageError(f"bad --filters '{spec}'", hint="use 'all' or 0-based indices like 0,5,7") from None
    if not chosen:
        raise UsageError(f"bad --filters '{spec}'", hint="use 'all' or 0-based indices like 0,5,7")
    bad = [i for i in chosen if not 0 <= i < num_filters]
    if bad:
        raise UsageError(f"filter {bad[0]} does not exist in this layer (0..{num_filters - 1})",
                         hint="filters are 0-based channel indices")
    return chosen


# -- the model's layers ----------------------------------------------------------------------------
def num_conv_layers(model) -> int:
    return len(model.conv_layers())


def has_learned_front(model) -> bool:
    """False for frame-level mel models, whose layer 1 is the mel spectrogram."""
    return getattr(model, "family", "") != "frame-mel"


def layer_channels(model, layer: int) -> int:
    if layer == 1:
        return int(model.front_channels)
    return int(model.modules_[layer - 2].out_channels)


def min_input_samples(model, layer: int) -> int:
    """The shortest input for which `layer` has at least one output step (before its pooling)."""
    pools = [module.pool for module in model.modules_[: max(0, layer - 2)]]
    return int(model.front_reduction * math.prod(pools))


def check_layer(model, layer: int) -> None:
    if layer == 1 and not has_learned_front(model):
        raise UsageError(f"layer 1 of {model.name} is the mel-spectrogram front end: it has no learned filters",
                         hint=f"frame-level mel models have conv layers 2..{num_conv_layers(model)}")


def layer_response(model, x, layer: int):
    """The layer's response (B, C, T') after BN, before ReLU and pooling, for input x (B, T)."""
    x = model._as_batch(x)
    if layer == 1:  # the strided first conv: conv -> BN (frame-level raw pads the signal first)
        if getattr(model, "family", "") == "frame-raw":
            x = model._pad(x, model.window)
        return model.front[1](model.front[0](x))
    h = model.forward_front(x)
    for module in model.modules_[: layer - 2]:
        h = module(h)
    stage = model.modules_[layer - 2]
    return stage[1](stage[0](h))  # conv -> BN


def front_stride(model) -> int:
    return int(model.front[0].stride[0])


def linear_front_note(model, sample_rate: int, method: str) -> str:
    """Why layer 1 is read from its weights (or why its gradient-ascent picture is lines): one sentence."""
    m, k = front_stride(model), int(model.front[0].kernel_size[0])
    shape = f"filter = stride = {m}" if k == m else f"filter {k}, stride {m}"
    why = (f"Layer 1 ({shape}) is linear up to its ReLU, so gradient ascent can only give energy at 0 and "
           f"multiples of sr/{m} ({sample_rate / m:,.0f} Hz)")
    if method == "weights":
        return f"{why}: shown instead is each filter's frequency response, from its weights."
    return f"{why}; --method auto shows each filter's frequency response from its weights."


def resolve_method(model, layer: int, method: str) -> str:
    """'auto' -> 'weights' for a learned layer 1, 'ascent' elsewhere; 'weights' only exists for layer 1."""
    if method not in METHODS:
        raise UsageError(f"unknown --method '{method}'", hint="use auto, weights or ascent")
    if method == "auto":
        return "weights" if layer == 1 and has_learned_front(model) else "ascent"
    if method == "weights" and layer != 1:
        raise UsageError(f"--method weights reads layer 1 only (layer {layer} is not linear)",
                         hint="use --method auto: gradient ascent for layers 2 and up")
    return method


def layer_filters(model, layer: int, filters: list[int] | None = None, *, method: str = "auto",
                  **ascent_options) -> LayerFilters:
    """What `layer`'s filters respond to, by the method `resolve_method` picks."""
    check_layer(model, layer)
    if resolve_method(model, layer, method) == "weights":
        return weight_response(model, filters, sample_rate=ascent_options.get("sample_rate"))
    return gradient_ascent(model, layer, filters, **ascent_options)


def weight_response(model, filters: list[int] | None = None, *, sample_rate: int | None = None,
                    n_fft: int = RESPONSE_FFT) -> LayerFilters:
    """Layer 1's filters read directly: the taps scaled by BN's per-channel gain, and |H(f)| of each.

    Conv then BN is linear per channel, so a sinusoid of frequency f comes out scaled by |H(f)| (before
    the stride folds frequencies): the spectrum of the taps is exactly what the filter passes. Unlike
    gradient-ascent spectra the mean is kept: a low-pass filter's peak is at 0 Hz.
    """
    import torch

    check_layer(model, 1)
    conv, bn = model.front[0], model.front[1]
    channels = int(conv.out_channels)
    filters = list(range(channels)) if filters is None else list(filters)
    with torch.no_grad():
        gain = (bn.weight / torch.sqrt(bn.running_var + bn.eps)).abs() if bn.affine else \
            1.0 / torch.sqrt(bn.running_var + bn.eps)
        taps = (conv.weight[:, 0, :] * gain[:, None]).double().numpy()[filters]
    sr = int(sample_rate or model.sample_rate)
    spectra = np.abs(np.fft.rfft(taps, n=max(n_fft, taps.shape[-1]), axis=-1))
    freqs = np.fft.rfftfreq(max(n_fft, taps.shape[-1]), d=1.0 / sr)
    peak_hz = freqs[np.argmax(spectra, axis=-1)]
    order = np.argsort(peak_hz, kind="stable")
    return LayerFilters(layer=1, sample_rate=sr, input_samples=taps.shape[-1], filters=filters, waveforms=taps,
                        freqs_hz=freqs, spectra=spectra, peak_hz=peak_hz, order=order, method="weights",
                        stride=front_stride(model))


# -- gradient ascent -------------------------------------------------------------------------------
def gradient_ascent(model, layer: int, filters: list[int] | None = None, *, input_samples: int = DEFAULT_INPUT_SAMPLES,
                    steps: int = DEFAULT_STEPS, step_size: float = DEFAULT_STEP_SIZE, seed: int = 0,
                    sample_rate: int | None = None) -> LayerFilters:
    """Optimise one input per filter to maximise the filter's mean response; returns waveforms + spectra."""
    import torch

    check_layer(model, layer)
    if steps < 1 or step_size <= 0:
        raise UsageError("--steps must be at least 1 and --step-size positive")
    channels = layer_channels(model, layer)
    filters = list(range(channels)) if filters is None else list(filters)
    samples = max(int(input_samples), min_input_samples(model, layer))
    sr = int(sample_rate or model.sample_rate)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)

    generator = torch.Generator().manual_seed(int(seed))
    x_all = torch.randn(len(filters), samples, generator=generator) * NOISE_STD
    chunk = max(1, MAX_BATCH_SAMPLES // samples)
    out = []
    for start in range(0, len(filters), chunk):
        idx = torch.tensor(filters[start:start + chunk])
        x = x_all[start:start + chunk].clone()
        for _ in range(steps):
            x.requires_grad_(True)
            response = layer_response(model, x, layer)  # (B, C, T')
            target = response[torch.arange(len(idx)), idx].mean(dim=-1)  # (B,) one filter per input
            (grad,) = torch.autograd.grad(target.sum(), x)
            rms = grad.pow(2).mean(dim=-1, keepdim=True).sqrt()
            x = (x + step_size * grad / (rms + 1e-12)).detach()
        out.append(x)
    waveforms = torch.cat(out).numpy().astype(np.float64)
    result = _with_spectra(layer, sr, filters, waveforms)
    if has_learned_front(model):  # the stride that shapes every layer's ascent spectra (see figures)
        result.stride = front_stride(model)
    return result


def _with_spectra(layer: int, sr: int, filters: list[int], waveforms: np.ndarray) -> LayerFilters:
    # The mean is removed first: a mean-response objective adds a DC offset to almost every result, and a
    # 0 Hz peak would say nothing about the filter's band.
    centred = waveforms - waveforms.mean(axis=-1, keepdims=True)
    spectra = np.abs(np.fft.rfft(centred, axis=-1))
    freqs = np.fft.rfftfreq(waveforms.shape[-1], d=1.0 / sr)
    peak_hz = freqs[np.argmax(spectra, axis=-1)]
    order = np.argsort(peak_hz, kind="stable")
    return LayerFilters(layer=layer, sample_rate=sr, input_samples=waveforms.shape[-1], filters=filters,
                        waveforms=waveforms, freqs_hz=freqs, spectra=spectra, peak_hz=peak_hz, order=order)
