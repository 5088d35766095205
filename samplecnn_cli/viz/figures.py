"""Matplotlib figures (Agg backend, no display needed): the paper's Figures 2-4 and the report's plots.

Every figure has a title, axis labels with units, and is written atomically as PNG (+ SVG when asked).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from samplecnn_cli.viz.filters import LayerFilters

DPI = 110


def save_figure(fig, stem: Path, svg: bool = True) -> list[Path]:
    """Write `stem`.png (and .svg) through temporary names; return the paths."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in ("png", "svg") if svg else ("png",):
        path = stem.with_suffix(f".{fmt}")
        tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
        _save(fig, tmp, path, format=fmt, dpi=DPI, bbox_inches="tight")
        paths.append(path)
    return paths


DB_RANGE = 40.0  # colour scale: 0 dB at each filter's peak down to -40 dB, so weaker bands stay visible
COLOUR_LABEL = f"magnitude (dB re. each filter's peak, -{DB_RANGE:.0f} to 0)"


def _spectrum_image(result: LayerFilters) -> np.ndarray:
    """(K freq bins, F filters): spectra sorted by peak frequency, in dB relative to each one's maximum."""
    spectra = result.spectra[result.order]
    peak = spectra.max(axis=1, keepdims=True)
    relative = spectra / np.where(peak > 0, peak, 1.0)
    return np.maximum(20 * np.log10(np.maximum(relative, 1e-12)), -DB_RANGE).T


def _draw_spectra(ax, result: LayerFilters, title: str):
    image = _spectrum_image(result)
    extent = (-0.5, image.shape[1] - 0.5, 0.0, result.sample_rate / 2)
    mappable = ax.imshow(image, origin="lower", aspect="auto", extent=extent, cmap="magma",
                         interpolation="nearest", vmin=-DB_RANGE, vmax=0.0)
    ax.set_title(title)
    ax.set_xlabel("filter rank (sorted by peak frequency)")
    ax.set_ylabel("frequency (Hz)")
    return mappable


def layer1_note(result: LayerFilters) -> str:
    """The caption that keeps a layer-1 figure from looking broken (see viz/filters.py)."""
    if not result.stride:
        return ""
    line = f"sr/{result.stride} = {result.sample_rate / result.stride:,.0f} Hz"
    if result.layer != 1:  # the ascent's input passes layer 1's strided conv: its images show through
        return (f"A line at {line} (and energy mirrored around it) comes from layer 1's stride of "
                f"{result.stride}, not from this layer's filters.")
    if result.method == "weights":
        return (f"Layer 1 is linear up to its ReLU (stride {result.stride}): gradient ascent would only give energy "
                f"at 0 and multiples of {line},\nso each filter's frequency response is computed from its weights.")
    return (f"Layer 1 is linear up to its ReLU (stride {result.stride}): gradient ascent can only give energy at 0 "
            f"and multiples of {line}.\nThe default (--method auto) shows the weights' frequency responses instead.")


def spectra_figure(result: LayerFilters, model_name: str = ""):
    """Figure 3: the magnitude spectrum of every filter of a layer, sorted by the frequency of its peak."""
    fig, ax = _subplots(figsize=(7, 4.2))
    what = "frequency responses of the weights" if result.method == "weights" else "gradient-ascent spectra"
    title = f"Layer {result.layer} {what} ({len(result.filters)} filters, {result.sample_rate:,} Hz)"
    mappable = _draw_spectra(ax, result, f"{model_name}: {title}" if model_name else title)
    fig.colorbar(mappable, ax=ax, label=COLOUR_LABEL)
    note = layer1_note(result)
    if note:
        fig.text(0.01, -0.02, note, fontsize=7.5, va="top", ha="left", color="#333")
    return fig


def waveforms_figure(result: LayerFilters, model_name: str = "", examples: int = 8):
    """Figure 2: the gradient-ascent waveforms of a few filters, spread over the peak-frequency order."""
    count = min(examples, len(result.filters))
    picks = result.order[np.linspace(0, len(result.order) - 1, count).round().astype(int)]
    cols = 2 if count > 1 else 1
    rows = int(np.ceil(count / cols))
    fig, axes = _subplots(rows, cols, figsize=(7, 1.5 * rows + 0.8), squeeze=False, sharex=True)
    time_ms = np.arange(result.input_samples) / result.sample_rate * 1000
    marker = "o" if result.input_samples <= 32 else None  # a few taps of layer 1's weights
    for ax, i in zip(axes.flat, picks, strict=False):
        ax.plot(time_ms, result.waveforms[i], linewidth=0.7, marker=marker, markersize=3)
        ax.set_title(f"filter {result.filters[i]} (peak {result.peak_hz[i]:,.0f} Hz)", fontsize=8)
        ax.set_ylabel("amplitude (a.u.)", fontsize=7)
        ax.tick_params(labelsize=7)
    for ax in axes.flat[count:]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel("time (ms)")
    head = f"{model_name}: " if model_name else ""
    what = "filter weights (impulse responses)" if result.method == "weights" else "gradient-ascent waveforms"
    fig.suptitle(f"{head}layer {result.layer} {what}", fontsize=10)
    fig.tight_layout()
    return fig


def compare_figure(columns: list[tuple[str, dict[int, LayerFilters]]]):
    """Figure 4: one column per run (sample rate), one row per layer, y in Hz up to each model's sr/2."""
    layers = sorted({layer for _, results in columns for layer in results})
    fig, axes = _subplots(len(layers), len(columns), figsize=(2.6 * len(columns) + 1, 2.1 * len(layers) + 0.6),
                             squeeze=False)
    mappable = None
    for c, (label, results) in enumerate(columns):
        for r, layer in enumerate(layers):
            ax = axes[r][c]
            if layer not in results:
                ax.set_axis_off()
                ax.set_title(f"{label}\nlayer {layer}: n/a", fontsize=8)
                continue
            mappable = _draw_spectra(ax, results[layer], f"{label}\nlayer {layer}")
            ax.title.set_fontsize(8)
            ax.xaxis.label.set_fontsize(7)
            ax.yaxis.label.set_fontsize(7)
            ax.tick_params(labelsize=6)
    fig.suptitle("Filter spectra by sample rate (sorted by peak frequency)", fontsize=11)
    fig.tight_layout()
    if mappable is not None:
        fig.colorbar(mappable, ax=axes, label=COLOUR_LABEL, shrink=0.6)
    if any(1 in results for _, results in columns):
        fig.text(0.01, 0.0, "Layer 1: frequency responses of the weights (linear up to its ReLU, so gradient ascent "
                 "would only give lines at multiples of sr/stride).", fontsize=7, va="top")
    return fig


# -- report figures --------------------------------------------------------------------------------
def training_curves_figure(curves: dict[str, dict[str, list[float]]]):
    """Loss per epoch for each run: curves = {run label: {"epoch": [...], "train_loss": [...], ...}}."""
    fig, ax = _subplots(figsize=(7, 3.8))
    for label, curve in curves.items():
        for key, style in (("train_loss", "-"), ("valid_loss", "--")):
            values = curve.get(key) or []
            if values:
                ax.plot(curve["epoch"][: len(values)], values, style, marker="o", markersize=3,
                        label=f"{label} ({key.replace('_', ' ')})")
    ax.set_title("Training curves")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (cross-entropy, nats)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return fig


def roc_figure(curves: list[tuple[str, np.ndarray, np.ndarray, float]], title: str):
    """ROC curves: [(label, fpr, tpr, auc), ...]."""
    fig, ax = _subplots(figsize=(5, 4.6))
    for label, fpr, tpr, auc in curves:
        ax.plot(fpr, tpr, linewidth=1.2, label=f"{label} (AUC {auc:.4f})")
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=0.8, label="chance")
    ax.set_title(title)
    ax.set_xlabel("false positive rate (fraction)")
    ax.set_ylabel("true positive rate (fraction)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.legend(fontsize=7, loc="lower right")
    return fig


def confusion_figure(matrix: np.ndarray, labels: list[str], title: str):
    matrix = np.asarray(matrix)
    size = max(4.0, 0.45 * len(labels) + 2)
    fig, ax = _subplots(figsize=(size + 1, size))
    mappable = ax.imshow(matrix, cmap="Blues", interpolation="nearest")
    ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    if len(labels) <= 20:
        top = matrix.max() if matrix.size else 0
        for (i, j), value in np.ndenumerate(matrix):
            ax.text(j, i, f"{value:g}", ha="center", va="center", fontsize=6,
                    color="white" if value > top / 2 else "black")
    ax.set_title(title)
    ax.set_xlabel("predicted label")
    ax.set_ylabel("true label")
    fig.colorbar(mappable, ax=ax, label="songs (count)")
    return fig


def per_label_figure(values: dict[str, float], title: str, metric: str = "ROC-AUC"):
    names = sorted(values, key=lambda k: values[k])
    fig, ax = _subplots(figsize=(7, max(2.5, 0.18 * len(names) + 1)))
    ax.barh(range(len(names)), [values[n] for n in names], color="tab:blue")
    ax.set_yticks(range(len(names)), names, fontsize=6 if len(names) > 25 else 8)
    ax.set_xlim(0, 1)
    ax.set_title(title)
    ax.set_xlabel(f"{metric} (0-1)")
    ax.set_ylabel("label")
    ax.grid(axis="x", alpha=0.3)
    return fig


def _subplots(*grid, figsize, **options):
    """A bare Figure (no pyplot): drawn by the Agg canvas, no window, no global matplotlib state."""
    fig = Figure(figsize=figsize)
    return fig, fig.subplots(*grid, **options)


def taggram_figure(window_scores: np.ndarray, labels: list[str], hop_seconds: float, title: str):
    """Per-window scores of one file (labels x time): `tag --taggram`."""
    scores = window_scores.T  # (labels, windows)
    fig, ax = _subplots(figsize=(max(4.0, min(16.0, 0.25 * scores.shape[1] + 3)), max(2.5, 0.22 * len(labels) + 1)))
    extent = (0, scores.shape[1] * hop_seconds, len(labels) - 0.5, -0.5)
    image = ax.imshow(scores, aspect="auto", interpolation="nearest", cmap="magma", vmin=0, vmax=1, extent=extent)
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    ax.set_xlabel("window start (s)")
    ax.set_title(title, fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.03)
    fig.tight_layout()
    return fig


class TaggramFolder:
    """One PNG per file in `folder`, named after the file (made unique), written atomically."""

    def __init__(self, folder: Path, labels: list[str], hop_seconds: float):
        self.folder, self.labels, self.hop_seconds = Path(folder), labels, hop_seconds
        self.used: set[str] = set()

    def draw(self, path: str, window_scores: np.ndarray) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        stem, n = Path(path).stem, 2
        name = stem
        while name in self.used:
            name, n = f"{stem}-{n}", n + 1
        self.used.add(name)
        fig = taggram_figure(window_scores, self.labels, self.hop_seconds, Path(path).name)
        target, tmp = self.folder / f"{name}.png", self.folder / f".{name}.tmp.png"
        _save(fig, tmp, target, dpi=100)
        return target


def _save(fig, tmp: Path, target: Path, **options) -> None:
    """Draw `fig` into `tmp` and rename it to `target`; a failed write (a full disk) leaves no `tmp`."""
    from samplecnn_cli.core.outputs import remove_quietly

    try:
        fig.savefig(tmp, **options)
        os.replace(tmp, target)
    except BaseException:
        remove_quietly(tmp)
        raise
