"""A library of audio files through a trained run: the inference core (predictor.py) over decoded files.

One model load (`load_library_model`); files decoded in worker processes (soundfile + soxr to the model's
rate) while the model runs batches in which windows of several files share a slot; results stream out
per file. A file that cannot be read becomes an entry with an "error" and the others continue.
`tag` and `embed` are built from these pieces.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from samplecnn_cli.core.errors import RunError, UsageError
from samplecnn_cli.core.runtime import Runtime
from samplecnn_cli.inference.predictor import ClipResult, Predictor, decoded_files

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
            found.append(path)  # a missing file is reported by the predictor
    return found


def check_options(*, top_k: int = 1, batch_size: int | None = None, hop: float | None = None,
                  threshold: float | None = None, workers: int | None = None) -> None:
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
    from samplecnn_cli.runs import folder as runs

    loaded = runs.load_run(Path(run_dir))
    if loaded.kind != "train" or not hasattr(loaded.model, "forward_all"):
        raise RunError(f"{run_dir} is a {loaded.kind} run; this needs a waveform model trained by `samplecnn train`")
    return loaded


@dataclass
class LibraryModel:
    """A loaded run and its predictor: what tagging or embedding a library needs, built once."""

    loaded: object  # runs.folder.LoadedRun
    predictor: Predictor
    engine: str

    @property
    def labels(self) -> list[str]:
        return self.loaded.label_names

    def hop_samples(self, hop_seconds: float | None) -> int:
        """A hop in seconds as samples at the model's rate (None: one window, non-overlapping)."""
        if hop_seconds is None:
            return self.predictor.input_samples
        return max(1, int(round(hop_seconds * self.predictor.sample_rate)))


def load_library_model(run_dir, runtime: Runtime, *, batch_size: int | None = None, engine: str = "torch",
                       backend: str | None = None, cache: Path | None = None) -> LibraryModel:
    """The run's model behind the fastest backend measured here (or ONNX Runtime), loaded once."""
    if engine not in ENGINES:
        raise UsageError(f"unknown --engine '{engine}'", hint="use torch or onnx")
    loaded = load_waveform_run(run_dir)
    model, rate = loaded.model, int(loaded.sample_rate or loaded.model.sample_rate)
    if engine == "onnx":
        from samplecnn_cli.inference.onnx_runtime import OnnxModel

        fast, choice = OnnxModel.for_model(model, batch_size=batch_size)
        predictor = Predictor(fast, input_samples=fast.input_samples, sample_rate=rate, task=loaded.task,
                              batch_size=choice.batch_size, choice=choice)
    else:
        predictor = Predictor.for_model(model, runtime, task=loaded.task, batch_size=batch_size, backend=backend,
                                        cache=cache)
        predictor.sample_rate = rate
    return LibraryModel(loaded, predictor, engine)


def result_dict(r: ClipResult, labels: list[str], top_k: int, threshold: float | None = None) -> dict:
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


@contextmanager
def tag_results(model: LibraryModel, files: list[Path], *, hop: float | None = None, timeline: bool = False,
                workers: int | None = None):
    """ClipResults of `files`, in order, as they finish (scores, and every window's with `timeline`).
    A context manager: leaving it (an error, Ctrl-C, SIGTERM) stops the decoding workers at once."""
    want = ("scores", "window_scores") if timeline else ("scores",)
    with closing(decoded_files(files, model.predictor.sample_rate, workers)) as clips:
        yield model.predictor.run(clips, want, hop=model.hop_samples(hop))


def tag_files(model: LibraryModel, files: list[Path], *, top_k: int = 5, hop: float | None = None,
              timeline: bool = False, threshold: float | None = None, workers: int | None = None,
              on_file: Callable[[ClipResult], None] | None = None) -> list[dict]:
    """One dict per file: path, top (label/score pairs, best first), scores (every label), segments
    (windows), seconds, short; or path and error. Keeps every result: for many files use tag_to_file."""
    results = []
    with tag_results(model, files, hop=hop, timeline=timeline, workers=workers) as finished:
        for r in finished:
            results.append(result_dict(r, model.labels, top_k, threshold))
            if on_file:
                on_file(r)
    return results


def tag_to_file(model: LibraryModel, files: list[Path], out: Path, *, top_k: int = 5, hop: float | None = None,
                timeline: bool = False, threshold: float | None = None, workers: int | None = None,
                on_start: Callable[[int], None] | None = None,
                on_file: Callable[[ClipResult], None] | None = None, replace: bool = False) -> dict:
    """Stream one record per file to `out` (.csv or .jsonl) as files finish; skip files already there.
    One process writes `out` at a time (core/locks.py); `replace`: --force over a file tag did not write."""
    from samplecnn_cli.core.locks import hold
    from samplecnn_cli.inference.writers import TagWriter, output_format

    output_format(Path(out))
    hop_seconds = model.hop_samples(hop) / model.predictor.sample_rate
    started = time.perf_counter()
    counts = {"files": len(files), "tagged": 0, "failed": 0, "skipped_done": 0, "short": 0, "audio_seconds": 0.0}
    with hold(Path(out), str(out)), \
            TagWriter(Path(out), model.labels, top_k=min(top_k, len(model.labels)), threshold=threshold,
                      timeline=timeline, hop_seconds=hop_seconds, replace=replace) as writer:
        todo = [f for f in files if str(f.resolve()) not in writer.done]
        counts["skipped_done"] = len(files) - len(todo)
        if on_start:
            on_start(len(todo))
        with tag_results(model, todo, hop=hop, timeline=timeline, workers=workers) as finished:
            for r in finished:
                writer.add(r)
                _count(counts, r)
                if on_file:
                    on_file(r)
    return _summary(counts, out, time.perf_counter() - started, model, hop_seconds)


def _count(counts: dict, r: ClipResult) -> None:
    if r.error is not None:
        counts["failed"] += 1
        return
    counts["tagged"] += 1
    counts["short"] += int(r.short)
    counts["audio_seconds"] += r.seconds


def _summary(counts: dict, out: Path, seconds: float, model: LibraryModel, hop_seconds: float) -> dict:
    choice = model.predictor.choice
    counts["audio_seconds"] = round(counts["audio_seconds"], 3)
    return {"out": str(out), **counts, "seconds": round(seconds, 3),
            "files_per_second": round(counts["tagged"] / seconds, 3) if seconds else None,
            "realtime": round(counts["audio_seconds"] / seconds, 1) if seconds else None,
            "backend": choice.backend, "precision": choice.precision, "batch_size": choice.batch_size,
            "engine": model.engine, "hop_seconds": round(hop_seconds, 6)}


def embed_to_file(model: LibraryModel, files: list[Path], out: Path, *, hop: float | None = None,
                  layers: tuple[int, ...] = (), workers: int | None = None,
                  on_start: Callable[[int], None] | None = None,
                  on_file: Callable[[ClipResult], None] | None = None, replace: bool = False) -> dict:
    """Write `out` (inference/embeddings.py's HDF5 layout): per file the mean 512-d embedding and the
    max/avg-pooled hidden `layers`, and per window with a `hop`; return a summary. Resumes like
    `tag_to_file`: files already in `out` (or in its partial file, after an interruption) are skipped.
    One process writes `out` at a time; `replace`: --force over a file embed did not write."""
    from samplecnn_cli.core.locks import hold
    from samplecnn_cli.inference.embeddings import EmbeddingWriter
    from samplecnn_cli.inference.reducers import LayerPools

    predictor, choice = model.predictor, model.predictor.choice
    want = ["embedding"] + (["window_embeddings"] if hop else []) + ([LayerPools(layers)] if layers else [])
    started, audio = time.perf_counter(), 0.0
    with hold(Path(out), str(out)):
        writer = EmbeddingWriter(out, attrs=_embedding_attrs(model, hop, layers),
                                 layer_channels=layer_channels(model.loaded.model, layers), windows=bool(hop),
                                 replace=replace)
        todo = [f for f in files if str(f.resolve()) not in writer.done]
        try:
            if on_start:
                on_start(len(todo))
            with closing(decoded_files(todo, predictor.sample_rate, workers)) as clips:
                for r in predictor.run(clips, want, hop=model.hop_samples(hop)):
                    writer.add(r)
                    audio += r.seconds
                    if on_file:
                        on_file(r)
            writer.finish()
        except BaseException:
            writer.pause()
            raise
    seconds = time.perf_counter() - started
    rows, failed = writer.rows, writer.failed
    return {"out": str(out), "files": rows, "failed": failed, "feature_columns": writer.width,
            "skipped_done": len(files) - len(todo), "audio_seconds": round(audio, 3), "seconds": round(seconds, 3),
            "realtime": round(audio / seconds, 1) if seconds else None, "backend": choice.backend,
            "precision": choice.precision, "batch_size": choice.batch_size}


def _embedding_attrs(model: LibraryModel, hop: float | None, layers: tuple[int, ...]) -> dict:
    import json

    from samplecnn_cli import __version__
    from samplecnn_cli.inference.embeddings import POOLINGS

    loaded, predictor, choice = model.loaded, model.predictor, model.predictor.choice
    rate, hop_samples = predictor.sample_rate, model.hop_samples(hop)
    return {"run": str(Path(loaded.run_dir).resolve()), "model": loaded.model_name,
            "input_samples": predictor.input_samples, "sample_rate": rate,
            "window_seconds": predictor.input_samples / rate, "hop_seconds": hop_samples / rate,
            "layers": json.dumps(list(layers)), "poolings": json.dumps(list(POOLINGS)),
            "backend": choice.backend, "precision": choice.precision,
            "label_names": json.dumps(model.labels), "samplecnn_version": __version__}


def layer_channels(model, layers: tuple[int, ...]) -> dict[int, int]:
    """Channels of each hidden layer of `model` (from one forward pass of silence)."""
    import torch

    with torch.no_grad():
        hidden = model.eval().forward_all(torch.zeros(1, model.input_samples)).hidden
    return {layer: int(hidden[layer].shape[1]) for layer in sorted(layers)}
