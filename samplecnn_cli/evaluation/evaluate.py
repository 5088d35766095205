"""`evaluate_run`: song-level metrics of a run on a split, written next to the run."""

from __future__ import annotations

from pathlib import Path

from samplecnn_cli import runs
from samplecnn_cli.data.store import Store
from samplecnn_cli.errors import RunError
from samplecnn_cli.evaluation.predict import predict_split
from samplecnn_cli.features.transfer import predict_transfer_split


def metrics_path(run_dir: Path, split: str) -> Path:
    return runs.RunDir(Path(run_dir)).evaluation(split)


def evaluate_run(run_dir, split: str = "test", *, data=None, which: str = "best", batch_size: int = 64,
                 device: str = "auto", precision: str = "fp32", progress=None) -> dict:
    """Evaluate `run_dir`'s `which` checkpoint on `split` of its store (or of `data`).

    Writes metrics.json (test) or metrics-<split>.json, and predictions-<split>.npz (scores, targets,
    clip_ids, label_names) for ROC curves. Returns the metrics. `progress(clips_done, total)` is called
    while a train run's model scores the clips.
    """
    run_dir = Path(run_dir)
    loaded = runs.load_run(run_dir, which=which)
    if loaded.kind == "transfer":
        scores, targets = predict_transfer_split(loaded, split)
        clip_ids = None
        source = loaded.config.get("features") or loaded.config.get("data")
    else:
        store_dir = Path(data) if data is not None else _store_of(loaded.config, run_dir)
        store_split = Store(store_dir).split(split)
        clips_done = None if progress is None else (lambda done: progress(done, len(store_split)))
        scores, targets = predict_split(loaded.model, store_split, batch_size=batch_size, device=device,
                                        precision=precision, task=loaded.task, progress=clips_done)
        clip_ids = store_split.clip_ids
        source = str(store_dir)
    return runs.record_evaluation(loaded, split, scores, targets, which=which, clip_ids=clip_ids, source=source)


def _store_of(config: dict, run_dir) -> Path:
    if "data" not in config:
        raise RunError(f"{run_dir}/config.toml names no store ('data')", hint="pass --data STORE")
    return Path(config["data"])
