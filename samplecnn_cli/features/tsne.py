"""Figure 5: t-SNE of song-level features of clips carrying given labels, coloured by label.

Clips are selected when they carry EXACTLY ONE of the given labels (a clip tagged both "piano"
and "techno" has no single colour, so it is left out and counted in `excluded_several`). Features
are one run's chosen hidden layer, max- and average-pooled columns concatenated (as the MLP sees
them), standardised per column, then embedded by scikit-learn's TSNE (PCA init, fixed seed).
Writes the PNG and, beside it, <stem>.json with {"points": [{clip_id, label, x, y}, ...], ...}.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from samplecnn_cli.core.errors import DataError, UsageError
from samplecnn_cli.data.features_file import LAYERS, FeatureFile

MIN_CLIPS = 4
SMALL = 1000  # clips below which t-SNE runs single-threaded


def tsne_plot(features_path: Path, out: Path, *, layer: int, labels: list[str], split: str = "test",
              run: str | None = None, poolings: tuple[str, ...] | None = None, perplexity: float = 30.0,
              seed: int = 0) -> dict:
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    ff = FeatureFile(Path(features_path))
    if layer not in LAYERS:
        raise UsageError(f"layer {layer} does not exist: the features hold layers -3, -2 and -1")
    labels = list(dict.fromkeys(labels))
    if not labels:
        raise UsageError("give at least one label with --labels", hint="labels: " + ", ".join(ff.label_names))
    unknown = [name for name in labels if name not in ff.label_names]
    if unknown:
        raise UsageError(f"unknown label(s) {', '.join(unknown)}", hint="available: " + ", ".join(ff.label_names))
    if perplexity <= 0:
        raise UsageError("--perplexity must be positive")
    run = run or ff.runs[0]
    blocks = ff.select((run,), (layer,), poolings)
    if len({b.run for b in blocks}) > 1:
        raise UsageError(f"'{run}' names several runs in {ff.path.name}", hint="pass the run key: " + ", ".join(ff.runs))

    targets = ff.labels(split)[:, [ff.label_names.index(name) for name in labels]]
    chosen = np.flatnonzero(targets.sum(axis=1) == 1)
    several = int((targets.sum(axis=1) > 1).sum())
    if len(chosen) < MIN_CLIPS:
        raise DataError(f"only {len(chosen)} clip(s) of '{split}' carry exactly one of {', '.join(labels)}; "
                        f"t-SNE needs at least {MIN_CLIPS}",
                        hint="pick more common labels or another --split")
    x = ff.read(split, blocks, rows=chosen.tolist()).astype(np.float64)
    x = (x - x.mean(axis=0)) / np.where(x.std(axis=0) > 1e-8, x.std(axis=0), 1.0)
    used_perplexity = float(min(perplexity, (len(chosen) - 1) / 3))
    # For a few hundred points one thread wins: OpenMP start-up and spinning waits dominate (50x on a busy CPU).
    threads = 1 if len(chosen) < SMALL else None
    with threadpool_limits(threads):
        coords = TSNE(n_components=2, perplexity=used_perplexity, init="pca", random_state=seed).fit_transform(x)

    clip_ids = ff.clip_ids(split)
    point_labels = [labels[int(np.argmax(row))] for row in targets[chosen]]
    model = blocks[0].model
    title = f"t-SNE of layer {layer} features ({model}, {split}, {len(chosen)} clips)"
    _draw(Path(out), coords, point_labels, labels, title)
    result = {
        "figure": str(out), "features": str(ff.path), "run": blocks[0].run, "model": model, "layer": layer,
        "poolings": sorted({b.pooling for b in blocks}), "split": split, "labels": labels,
        "selection": "clips carrying exactly one of the labels", "excluded_several": several,
        "perplexity": used_perplexity, "seed": seed,
        "points": [{"clip_id": clip_ids[i], "label": lab, "x": float(cx), "y": float(cy)}
                   for i, lab, (cx, cy) in zip(chosen.tolist(), point_labels, coords, strict=True)],
    }
    json_path = Path(out).with_suffix(".json")
    from samplecnn_cli.runs.folder import atomic_write_text

    atomic_write_text(json_path, json.dumps(result, indent=2) + "\n")
    result["json"] = str(json_path)
    return result


def _draw(out: Path, coords: np.ndarray, point_labels: list[str], labels: list[str], title: str) -> None:
    # A bare Figure (no pyplot) renders with the Agg canvas and leaves global matplotlib state alone.
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 5.2), dpi=120)
    ax = fig.subplots()
    marks = np.array(point_labels)
    for k, name in enumerate(labels):
        mask = marks == name
        if mask.any():
            ax.scatter(coords[mask, 0], coords[mask, 1], s=14, color=f"C{k}", label=f"{name} ({int(mask.sum())})",
                       alpha=0.8)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("t-SNE dimension 1")
    ax.set_ylabel("t-SNE dimension 2")
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    suffix = out.suffix.lstrip(".").lower() or "png"
    tmp = out.with_name(f".{out.stem}.tmp{os.getpid()}.{suffix}")
    try:
        fig.savefig(tmp, format=suffix)
        os.replace(tmp, out)
    except BaseException:  # a full disk: no temporary file left
        tmp.unlink(missing_ok=True)
        raise
