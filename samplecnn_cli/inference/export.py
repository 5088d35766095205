"""Export a trained waveform model to ONNX or TorchScript for deployment, with its model card.

The exported graph is the batch-norm-folded model (fold.py) taking float32 audio (batch, input_samples)
at the model's sample rate, with a dynamic batch axis, and returning, by name:
    scores    (batch, labels)  the probabilities `samplecnn tag` reports: sigmoid (multi-label) or
                               softmax (single-label) of the logits
    logits    (batch, labels)
    embedding (batch, 512)     the penultimate layer averaged over time (what `samplecnn embed` stores)
    hidden_3, hidden_2, hidden_1 (batch, C, T)  the last three hidden layers (multi-level features)
Metadata travel inside the file (ONNX metadata_props, TorchScript extra file "samplecnn.json"): see
`metadata`. A model card goes beside the file (model_card.py): NAME.json and NAME.md.
"""

from __future__ import annotations

import io
import json
import os
import warnings
from pathlib import Path

import torch
from torch import nn

from samplecnn_cli.core import signals
from samplecnn_cli.core.runtime import outputs_to_scores
from samplecnn_cli.inference.fold import fold_batch_norm

FORMATS = {"onnx": ".onnx", "torchscript": ".pt"}
OUTPUTS = ["scores", "logits", "embedding", "hidden_3", "hidden_2", "hidden_1"]
FORMAT_VERSION = "2"  # 1: logits and hidden layers only, no scores/embedding outputs
ONNX_OPSET = 17


class Exportable(nn.Module):
    """The OUTPUTS of a folded copy of `model`; one plain tensor-in, tensors-out forward."""

    def __init__(self, model: nn.Module, task: str):
        super().__init__()
        self.model = fold_batch_norm(model)
        self.task = task

    def forward(self, audio: torch.Tensor):
        out = self.model.forward_all(audio)
        scores = outputs_to_scores(out.logits, self.task)  # the task head `tag` applies (core/runtime.py)
        return scores, out.logits, out.embedding, out.hidden[0], out.hidden[1], out.hidden[2]


def default_path(run_dir: Path, fmt: str) -> Path:
    """RUN/export/RUN_NAME.onnx (or .pt): beside the run it came from, named after it."""
    check_format(fmt)
    run_dir = Path(run_dir).resolve()
    return run_dir / "export" / f"{run_dir.name}{FORMATS[fmt]}"


def check_format(fmt: str) -> None:
    from samplecnn_cli.core.errors import UsageError

    if fmt not in FORMATS:
        raise UsageError(f"unknown export format '{fmt}'", hint="use onnx or torchscript")


def export_run(run_dir: Path, out: Path | None = None, fmt: str = "onnx") -> dict:
    """Export `run_dir`'s best weights to `out` (default: `default_path`) and write its model card
    beside it; return what was written and the metadata."""
    from samplecnn_cli.inference.library import load_waveform_run
    from samplecnn_cli.inference.model_card import write_card

    check_format(fmt)
    loaded = load_waveform_run(run_dir)
    out = Path(out) if out is not None else default_path(run_dir, fmt)
    meta = metadata(loaded)
    export_model(loaded.model, loaded.task, out, fmt, meta)
    card, card_md = write_card(out, fmt, meta, output_shapes(loaded.model, loaded.task))
    return {"out": str(out), "format": fmt, "card": str(card), "card_md": str(card_md), **meta}


def output_shapes(model: nn.Module, task: str) -> dict[str, list[int]]:
    """Each output's shape for a batch of one (for the model card)."""
    with torch.no_grad():
        outputs = Exportable(model, task).eval()(torch.zeros(1, model.input_samples))
    return {name: list(tensor.shape) for name, tensor in zip(OUTPUTS, outputs, strict=True)}


def metadata(loaded) -> dict:
    """What a deployment needs besides the graph, as strings (ONNX metadata values are strings)."""
    from samplecnn_cli import __version__
    from samplecnn_cli.data.audio import RESAMPLE_QUALITY

    model = loaded.model
    samples = int(model.input_samples)
    meta = {"format": "samplecnn-export", "format_version": FORMAT_VERSION, "model": loaded.model_name,
            "labels": json.dumps(loaded.label_names), "task": loaded.task,
            "scores": "sigmoid" if loaded.task == "multilabel" else "softmax",
            "sample_rate": str(int(loaded.sample_rate or model.sample_rate)), "input_samples": str(samples),
            "outputs": json.dumps(OUTPUTS),
            "input": "audio: float32 (batch, input_samples), mono (mean of the channels), in [-1, 1], at sample_rate",
            "resampler": "soxr", "resampler_quality": RESAMPLE_QUALITY,
            "hop_samples": str(samples),
            "hop": "samplecnn tag cuts a file into non-overlapping windows of input_samples (the tail shorter "
                   "than a window is dropped; a clip shorter than one window is zero-padded to one) and averages "
                   "the windows' scores",
            "training_data": json.dumps(training_data(loaded)), "samplecnn_version": __version__}
    metrics = test_metrics(loaded)
    if metrics is not None:
        meta["metrics"] = json.dumps(metrics)
    return meta


def training_data(loaded) -> dict:
    """The store the run trained on, from its config.toml (clip counts when the store is still there)."""
    config = loaded.config
    data = {"dataset": config.get("dataset"), "store": config.get("data"),
            "train_splits": config.get("train_splits", ["train"]), "task": loaded.task,
            "labels": len(loaded.label_names)}
    if config.get("data"):
        from samplecnn_cli.core.errors import SampleCNNError
        from samplecnn_cli.data.store import Store

        try:
            data["clips"] = {split.split: len(split) for split in Store(Path(config["data"]))}
        except (SampleCNNError, OSError):
            pass  # the store was moved or deleted since: the path and dataset name still say what it was
    return {k: v for k, v in data.items() if v is not None}


def test_metrics(loaded) -> dict | None:
    """The song-level test metrics `samplecnn evaluate` wrote for these weights (best.pt), if any."""
    from samplecnn_cli.runs.folder import RunDir

    path = RunDir(Path(loaded.run_dir)).evaluation("test")
    try:
        metrics = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if metrics.get("checkpoint", "best") != "best":
        return None  # evaluated on last.pt: not the exported weights
    keep = ("split", "clips", "roc_auc", "pr_auc", "accuracy", "macro_f1", "data", "inference")  # + its arithmetic
    return {k: metrics[k] for k in keep if metrics.get(k) is not None}


def export_model(model: nn.Module, task: str, out: Path, fmt: str, meta: dict) -> Path:
    """Write `model` to `out` (temporary name, then renamed) with `meta` inside the file."""
    check_format(fmt)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    module = Exportable(model, task).eval()
    example = torch.zeros(2, model.input_samples)
    try:
        if fmt == "onnx":
            _export_onnx(module, example, tmp, meta)
        else:
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                traced = torch.jit.trace(module, example, check_trace=False)
            buffer = io.BytesIO()  # written by Python: torch's own file writer aborts the process on a full disk
            with signals.deferred():  # an interrupt raised inside torch's writer would become its RuntimeError
                torch.jit.save(traced, buffer, _extra_files={"samplecnn.json": json.dumps(meta)})
            tmp.write_bytes(buffer.getvalue())
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return out


def _export_onnx(module: nn.Module, example: torch.Tensor, path: Path, meta: dict) -> None:
    from samplecnn_cli.core.errors import UsageError

    try:
        import onnx
    except ImportError:
        raise UsageError("ONNX export needs the onnx package", hint="pip install 'samplecnn[onnx]'") from None
    axes = {"audio": {0: "batch"}, **{name: {0: "batch"} for name in OUTPUTS}}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # the TorchScript-based exporter: no onnxscript needed, handles dynamic_axes directly
        torch.onnx.export(module, (example,), str(path), input_names=["audio"], output_names=OUTPUTS,
                          dynamic_axes=axes, opset_version=ONNX_OPSET, dynamo=False)
    proto = onnx.load(str(path))
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, str(path))


def read_metadata(path: Path) -> dict:
    """The metadata of an exported file (either format)."""
    path = Path(path)
    if path.suffix.lower() == ".onnx":
        import onnx

        return {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    files = {"samplecnn.json": ""}
    torch.jit.load(str(path), _extra_files=files)
    return json.loads(files["samplecnn.json"])
