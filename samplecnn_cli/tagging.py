"""Tag audio files with a trained run through the streaming inference engine (samplecnn_cli.inference).

One model load; files decoded in worker processes (soundfile + soxr to the model's rate) while the
model runs batches in which windows of several files share a slot; results stream out per file.
A file that cannot be read becomes an entry with an "error" and the others continue.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".au", ".aif", ".aiff", ".aifc", ".w64",
                  ".caf", ".m4a"}
ENGINES = ("torch", "onnx")


def collect_files(paths) -> list[Path]:
    """Files given directly (whatever their suffix) and audio files found under given folders, sorted."""
    found: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
        else:
            found.append(path)  # a missing file is reported by the engine
    return found


def check_options(*, top_k: int = 1, batch_size: int | None = None, hop: float | None = None,
                  threshold: float | None = None, workers: int | None = None) -> None:
    from samplecnn_cli.errors import UsageError

    if top_k < 1:
        raise UsageError(f"--top-k must be at least 1, not {top_k}")
    if batch_size is not None and batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, not {batch_size}", hint="or leave it out: it is measured")
    if hop is not None and not hop > 0:
        raise UsageError(f"--hop must be a positive number of seconds, not {hop}")
    if threshold is not None and not 0.0 <= threshold <= 1.0:
        raise UsageError(f"--threshold must be in [0, 1], not {threshold}")
    if workers is not None and workers < 0:
        raise UsageError(f"--workers must be 0 or more, not {workers}")


def load_waveform_run(run_dir):
    from samplecnn_cli import runs
    from samplecnn_cli.errors import RunError

    loaded = runs.load_run(Path(run_dir))
    if loaded.kind != "train" or not hasattr(loaded.model, "forward_all"):
        raise RunError(f"{run_dir} is a {loaded.kind} run; this needs a waveform model trained by `samplecnn train`")
    return loaded


def build_engine(loaded, *, want, hop: float | None = None, batch_size: int | None = None, device: str = "auto",
                 precision: str = "auto", workers: int | None = None, engine: str = "torch", backend: str | None = None):
    """(Engine, Choice) for a loaded run: the fastest backend measured here (or the ONNX runtime)."""
    from samplecnn_cli.errors import UsageError
    from samplecnn_cli.inference.backend import choose
    from samplecnn_cli.inference.engine import Engine
    from samplecnn_cli.training.device import resolve_device

    if engine not in ENGINES:
        raise UsageError(f"unknown --engine '{engine}'", hint="use torch or onnx")
    model = loaded.model
    rate = int(loaded.sample_rate or model.sample_rate)
    torch_device = resolve_device(device)
    if precision not in ("auto", "fp32", "bf16", "fp16"):
        raise UsageError(f"unknown precision '{precision}'", hint="use fp32, bf16 or auto")
    if engine == "onnx":
        from samplecnn_cli.inference.onnx_runtime import OnnxModel

        fast, choice = OnnxModel.for_model(model, batch_size=batch_size)
    else:
        fast, choice = choose(model, precision=precision, device=torch_device, batch_size=batch_size, backend=backend)
    hop_samples = None if hop is None else max(1, int(round(hop * rate)))
    return Engine(fast, sample_rate=rate, task=loaded.task, batch_size=choice.batch_size, hop=hop_samples,
                  want=want, workers=workers), choice


def result_dict(r, labels: list[str], top_k: int, threshold: float | None = None) -> dict:
    from samplecnn_cli.inference.writers import top_labels

    if r.error is not None:
        return {"path": r.path, "error": r.error}
    out = {"path": r.path, "seconds": round(r.seconds, 3), "segments": r.windows, "short": r.short,
           "top": top_labels(r.scores, labels, top_k),
           "scores": {name: float(s) for name, s in zip(labels, r.scores, strict=True)}}
    if threshold is not None:
        out["tags"] = [labels[i] for i in np.flatnonzero(r.scores >= threshold)]
    if r.window_scores is not None:
        out["timeline"] = np.round(r.window_scores, 6).tolist()
    return out


def tag_files(run_dir, paths, *, top_k: int = 5, batch_size: int | None = None, device: str = "auto",
              precision: str = "auto", hop: float | None = None, timeline: bool = False,
              threshold: float | None = None, workers: int | None = None, engine: str = "torch") -> list[dict]:
    """One dict per file: path, top (label/score pairs, best first), scores (every label), segments
    (windows), seconds, short; or path and error. Keeps every result: for many files use tag_to_file."""
    check_options(top_k=top_k, batch_size=batch_size, hop=hop, threshold=threshold, workers=workers)
    loaded = load_waveform_run(run_dir)
    want = ("scores", "window_scores") if timeline else ("scores",)
    eng, _ = build_engine(loaded, want=want, hop=hop, batch_size=batch_size, device=device, precision=precision,
                          workers=workers, engine=engine)
    return [result_dict(r, loaded.label_names, top_k, threshold) for r in eng.run(collect_files(paths))]


def tag_to_file(run_dir, paths, out: Path, *, top_k: int = 5, batch_size: int | None = None,
                device: str = "auto", precision: str = "auto", hop: float | None = None, timeline: bool = False,
                threshold: float | None = None, taggram_dir: Path | None = None, workers: int | None = None,
                engine: str = "torch", on_start: Callable[[int], None] | None = None,
                on_file: Callable[[object], None] | None = None) -> dict:
    """Stream one record per file to `out` (.csv or .jsonl) as files finish; skip files already there."""
    from samplecnn_cli.inference.writers import TagWriter, output_format

    check_options(top_k=top_k, batch_size=batch_size, hop=hop, threshold=threshold, workers=workers)
    output_format(Path(out))
    loaded = load_waveform_run(run_dir)
    timeline = timeline or taggram_dir is not None
    want = ("scores", "window_scores") if timeline else ("scores",)
    files = collect_files(paths)
    eng, choice = build_engine(loaded, want=want, hop=hop, batch_size=batch_size, device=device,
                               precision=precision, workers=workers, engine=engine)
    hop_seconds = eng.hop / eng.rate
    started = time.perf_counter()
    counts = {"files": len(files), "tagged": 0, "failed": 0, "skipped_done": 0, "short": 0, "audio_seconds": 0.0}
    with TagWriter(Path(out), loaded.label_names, top_k=min(top_k, len(loaded.label_names)), threshold=threshold,
                   timeline=timeline, hop_seconds=hop_seconds) as writer:
        todo = [f for f in files if str(f.resolve()) not in writer.done]
        counts["skipped_done"] = len(files) - len(todo)
        if on_start:
            on_start(len(todo))
        names: set[str] = set()
        for r in eng.run(todo):
            writer.add(r)
            if r.error is not None:
                counts["failed"] += 1
            else:
                counts["tagged"] += 1
                counts["short"] += int(r.short)
                counts["audio_seconds"] += r.seconds
                if taggram_dir is not None:
                    draw_taggram(r, loaded.label_names, hop_seconds, Path(taggram_dir), names)
            if on_file:
                on_file(r)
    seconds = time.perf_counter() - started
    counts["audio_seconds"] = round(counts["audio_seconds"], 3)
    return {"out": str(out), **counts, "seconds": round(seconds, 3),
            "files_per_second": round(counts["tagged"] / seconds, 3) if seconds else None,
            "realtime": round(counts["audio_seconds"] / seconds, 1) if seconds else None,
            "backend": choice.backend, "precision": choice.precision, "batch_size": choice.batch_size,
            "engine": engine, "hop_seconds": round(hop_seconds, 6)}


def draw_taggram(r, labels: list[str], hop_seconds: float, folder: Path, used: set[str]) -> Path:
    """A PNG of the per-window scores (labels x time) of one file, named after it (unique in folder)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    stem, n = Path(r.path).stem, 2
    name = stem
    while name in used:
        name, n = f"{stem}-{n}", n + 1
    used.add(name)
    scores = r.window_scores.T  # (labels, windows)
    fig, ax = plt.subplots(figsize=(max(4.0, min(16.0, 0.25 * scores.shape[1] + 3)), max(2.5, 0.22 * len(labels) + 1)))
    extent = (0, r.windows * hop_seconds, len(labels) - 0.5, -0.5)
    image = ax.imshow(scores, aspect="auto", interpolation="nearest", cmap="magma", vmin=0, vmax=1, extent=extent)
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    ax.set_xlabel("window start (s)")
    ax.set_title(Path(r.path).name, fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.03)
    fig.tight_layout()
    path = folder / f"{name}.png"
    tmp = folder / f".{name}.tmp.png"
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(path)
    return path
