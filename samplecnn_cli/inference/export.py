"""Export a trained waveform model to ONNX or TorchScript for deployment.

The exported graph is the batch-norm-folded model (fold.py) taking float32 audio (batch, input_samples)
at the model's sample rate, with a dynamic batch axis, and returning
    logits (batch, labels), hidden_3, hidden_2, hidden_1 (batch, C, T): the last three hidden layers
(the embedding is hidden_1 averaged over time). Metadata travel inside the file: ONNX metadata_props,
TorchScript extra file "samplecnn.json": labels, task, sample_rate, input_samples, model, outputs.
"""

from __future__ import annotations

import io
import json
import os
import warnings
from pathlib import Path

import torch
from torch import nn

from samplecnn_cli.inference.fold import fold_batch_norm

FORMATS = ("onnx", "torchscript")
OUTPUTS = ["logits", "hidden_3", "hidden_2", "hidden_1"]
ONNX_OPSET = 17


class Exportable(nn.Module):
    """(logits, hidden -3, -2, -1) of a folded copy; one plain tensor-in, tensors-out forward."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = fold_batch_norm(model)

    def forward(self, audio: torch.Tensor):
        out = self.model.forward_all(audio)
        return out.logits, out.hidden[0], out.hidden[1], out.hidden[2]


def metadata(loaded) -> dict:
    model = loaded.model
    return {"format": "samplecnn-export", "model": loaded.model_name, "labels": json.dumps(loaded.label_names),
            "task": loaded.task, "sample_rate": str(int(loaded.sample_rate or model.sample_rate)),
            "input_samples": str(int(model.input_samples)), "outputs": json.dumps(OUTPUTS),
            "input": "audio: float32 (batch, input_samples), mono, in [-1, 1], at sample_rate"}


def export_model(loaded, out: Path, fmt: str) -> Path:
    """Write `loaded.model` to `out` (temporary name, then renamed)."""
    from samplecnn_cli.core.errors import UsageError

    if fmt not in FORMATS:
        raise UsageError(f"unknown export format '{fmt}'", hint="use onnx or torchscript")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    module = Exportable(loaded.model).eval()
    example = torch.zeros(2, loaded.model.input_samples)
    meta = metadata(loaded)
    try:
        if fmt == "onnx":
            _export_onnx(module, example, tmp, meta)
        else:
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                traced = torch.jit.trace(module, example, check_trace=False)
            buffer = io.BytesIO()  # written by Python: torch's own file writer aborts the process on a full disk
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
