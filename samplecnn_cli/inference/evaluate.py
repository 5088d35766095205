"""`evaluate_run`: song-level metrics of a run on a split, written next to the run.

A waveform run's model runs through the inference core (predictor.py) over every clip of the split:
batch norm folded, the fastest backend measured here for the runtime's precision, the mean of the
scores of a clip's non-overlapping segments. A transfer run's MLP scores feature rows instead.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from samplecnn_cli.core.errors import DataError, RunError
from samplecnn_cli.core.runtime import Runtime
from samplecnn_cli.data.features_file import selection_from_config
from samplecnn_cli.data.store import Store, StoreSplit
from samplecnn_cli.inference.predictor import Predictor, store_clips
from samplecnn_cli.runs import folder as runs


def metrics_path(run_dir: Path, split: str) -> Path:
    return runs.RunDir(Path(run_dir)).evaluation(split)


def evaluate_run(run_dir, split: str = "test", runtime: Runtime | None = None, *, data=None, which: str = "best",
                 batch_size: int = 64, cache: Path | None = None, progress=None) -> dict:
    """Evaluate `run_dir`'s `which` checkpoint on `split` of its store (or of `data`), on `runtime`
    (default: the CPU in fp32).

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
        predictor = Predictor.for_model(loaded.model, runtime or Runtime.cpu(), task=loaded.task,
                                        batch_size=batch_size, cache=cache)
        scores, targets = predict_split(predictor, store_split, progress=progress)
        clip_ids = store_split.clip_ids
        source = str(store_dir)
    return runs.record_evaluation(loaded, split, scores, targets, which=which, clip_ids=clip_ids, source=source)


def predict_split(predictor: Predictor, split: StoreSplit, progress=None) -> tuple[np.ndarray, np.ndarray]:
    """(scores (N, L) float32, targets (N, L) bool) for every clip of `split`, in store order: sigmoid
    (multi-label) or softmax (single-label) scores, the mean over a clip's segments."""
    scores = np.zeros(split.labels.shape, np.float32)
    for done, result in enumerate(predictor.run(store_clips(split)), 1):
        scores[result.key] = result.scores
        if progress is not None:
            progress(done, len(split))
    return scores, split.labels.astype(bool).copy()


def _store_of(config: dict, run_dir) -> Path:
    if "data" not in config:
        raise RunError(f"{run_dir}/config.toml names no store ('data')", hint="pass --data STORE")
    return Path(config["data"])


# -- transfer runs: feature rows through the MLP, no audio --------------------------------------------
def predict_scores(model, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    model.eval()
    out = []
    with torch.no_grad():
        for begin in range(0, x.shape[0], batch_size):
            out.append(model.predict(torch.from_numpy(x[begin:begin + batch_size])).numpy())
    return np.concatenate(out, axis=0) if out else np.zeros((0, model.num_outputs), np.float32)


def predict_transfer_split(loaded_run, split_name: str) -> tuple[np.ndarray, np.ndarray]:
    """Scores (N, L) and bool targets (N, L) of a transfer run on one split of its feature files."""
    selection = selection_from_config(loaded_run.config)
    x, targets, _ = selection.read(split_name)
    model = loaded_run.model
    if x.shape[1] != model.in_features:
        raise DataError(f"the feature files now give {x.shape[1]} columns, the model expects {model.in_features}",
                        hint="re-extract the features this transfer run was trained on")
    return predict_scores(model, x), targets.astype(bool)
