"""`evaluate_run`: song-level metrics of a run on a split, written next to the run.

A waveform run's model runs through the inference core (predictor.py) over every clip of the split, the
mean of the scores of a clip's non-overlapping segments. By default it runs as it trained: a run trained
in bf16 (or fp16) as it is, batch norm not folded, under that precision's autocast, the arithmetic its
validation used, since a bf16-trained model is not the same model in fp32 or batch-norm-folded in bf16 (its
song-level accuracy moved by up to 0.2 on the Philharmonia stand-in's validation carve: docs/training.md);
a run trained in fp32 folded (the same arithmetic within 1e-4, faster). Given a precision, the
batch-norm-folded fastest backend measured here for it runs. A transfer run's MLP scores feature rows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from samplecnn_cli.core.errors import DataError, RunError
from samplecnn_cli.core.runtime import Runtime, native_bf16
from samplecnn_cli.data.features_file import selection_from_config
from samplecnn_cli.data.store import Store, StoreSplit
from samplecnn_cli.inference.predictor import Predictor, store_clips
from samplecnn_cli.runs import folder as runs


def metrics_path(run_dir: Path, split: str) -> Path:
    return runs.RunDir(Path(run_dir)).evaluation(split)


def evaluate_run(run_dir, split: str = "test", runtime: Runtime | None = None, *, data=None, which: str = "best",
                 batch_size: int = 64, cache: Path | None = None, progress=None, device: str = "auto") -> dict:
    """Evaluate `run_dir`'s `which` checkpoint on `split` of its store (or of `data`): as it trained (on
    `device`, see `trained_runtime`) when `runtime` is None, else batch norm folded on `runtime`.

    Writes metrics.json (test) or metrics-<split>.json, and predictions-<split>.npz (scores, targets,
    clip_ids, label_names) for ROC curves. Returns the metrics, with `inference` saying which precision and
    forward produced them. `progress(clips_done, total)` is called while a train run's model scores the clips.
    """
    run_dir = Path(run_dir)
    loaded = runs.load_run(run_dir, which=which)
    if loaded.kind == "transfer":
        scores, targets = predict_transfer_split(loaded, split)
        trained_fp32 = loaded.config.get("precision", "fp32") == "fp32"  # the MLP runs in fp32 here
        clip_ids, inference = None, {"precision": "fp32", "as_trained": trained_fp32, "forward": "eager"}
        source = loaded.config.get("features") or loaded.config.get("data")
    else:
        store_dir = Path(data) if data is not None else _store_of(loaded.config, run_dir)
        store_split = Store(store_dir).split(split)
        predictor, inference = _predictor(loaded, runtime, device, batch_size, cache)
        scores, targets = predict_split(predictor, store_split, progress=progress)
        clip_ids = store_split.clip_ids
        source = str(store_dir)
    return runs.record_evaluation(loaded, split, scores, targets, which=which, clip_ids=clip_ids, source=source,
                                  inference=inference)


def trained_runtime(config: dict, device: str = "auto") -> tuple[Runtime, str | None]:
    """The runtime a run trained in (config.toml's resolved `precision`) on `device`; fp32 where that
    precision has no native path here (bf16 on a CPU without bf16 units, fp16 off CUDA), with a note
    saying so (None when the run's own precision is used)."""
    trained = config.get("precision", "fp32")
    runtime = Runtime.resolve(device, "fp32")
    if trained == "fp32" or (trained == "bf16" and native_bf16(runtime.device)) \
            or (trained == "fp16" and runtime.device.type == "cuda"):
        return Runtime(runtime.device, trained, "run"), None
    return runtime, f"trained in {trained}, which {runtime.device.type} here does not run natively: fp32"


def _predictor(loaded, runtime: Runtime | None, device: str, batch_size: int, cache) -> tuple[Predictor, dict]:
    """The predictor for `loaded`'s model and what it is (`inference`: precision, as_trained, forward).

    runtime None: as the run trained. A run trained in bf16 or fp16 runs eager (batch norm after the
    low-precision convolution, as in training); an fp32 one folded, which equals eager fp32 within 1e-4."""
    as_trained, note = runtime is None, None
    if as_trained:
        runtime, note = trained_runtime(loaded.config, device)
        as_trained = note is None
    if runtime.precision != "fp32" and as_trained:
        model = loaded.model.to(runtime.device)
        predictor = Predictor.eager(model, runtime, task=loaded.task, batch_size=batch_size,
                                    input_samples=model.input_samples, sample_rate=model.sample_rate)
        inference = {"precision": runtime.precision, "as_trained": True, "forward": "eager"}
    else:
        predictor = Predictor.for_model(loaded.model, runtime, task=loaded.task, batch_size=batch_size, cache=cache)
        inference = {"precision": predictor.choice.precision, "as_trained": as_trained,
                     "forward": f"batch norm folded ({predictor.choice.backend})"}
    return predictor, inference if note is None else {**inference, "note": note}


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
