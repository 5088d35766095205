"""`tag --engine onnx`: the exported ONNX graph run by onnxruntime behind the FastModel interface."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch

from samplecnn_cli.inference.backend import Choice


class OnnxModel:
    FORWARD = ["logits", "hidden_3", "hidden_2", "hidden_1"]

    def __init__(self, path: Path, input_samples: int, threads: int | None = None):
        try:
            import onnxruntime as ort
        except ImportError:
            from samplecnn_cli.core.errors import UsageError

            raise UsageError("--engine onnx needs onnxruntime", hint="pip install 'samplecnn[onnx]'") from None
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input_samples = int(input_samples)
        self.backend, self.precision = "onnxruntime", "fp32"

    @classmethod
    def for_model(cls, model, batch_size: int | None = None) -> tuple[OnnxModel, Choice]:
        """Export `model` to a temporary ONNX file and load it (the file is read into memory)."""
        from samplecnn_cli.inference.export import export_model

        with tempfile.TemporaryDirectory() as folder:
            # the task only shapes the `scores` output, which the predictor does not read (it applies the
            # run's task head to the logits itself)
            path = export_model(model, "multilabel", Path(folder) / "model.onnx", "onnx", {})
            fast = cls(path, model.input_samples)
        return fast, Choice("onnxruntime", "fp32", batch_size or 16)

    def __call__(self, x: torch.Tensor):
        """(logits, [hidden_3, hidden_2, hidden_1]): the Predictor's forward, outputs asked for by name."""
        logits, *hidden = self.session.run(self.FORWARD, {"audio": np.ascontiguousarray(x.numpy(), dtype=np.float32)})
        return torch.from_numpy(logits), [torch.from_numpy(h) for h in hidden]
