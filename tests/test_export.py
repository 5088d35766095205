"""`samplecnn export`: ONNX (onnxruntime) and TorchScript files match PyTorch to 1e-4, dynamic batch, metadata."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from samplecnn_cli.cli.app import app
from samplecnn_cli.inference.export import read_metadata
from samplecnn_cli.runs import folder as runs
from tests.test_features_extract import fake_run


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return fake_run(tmp_path_factory.mktemp("exp") / "run", "sample-3^4", label_names=["x", "y", "z"])


def reference(run_dir, x):
    with torch.no_grad():
        return runs.load_run(run_dir).model.forward_all(torch.from_numpy(x))


def test_onnx_export_runs_in_onnxruntime_and_matches(run, tmp_path):
    ort = pytest.importorskip("onnxruntime", reason="install samplecnn[onnx]")
    out = tmp_path / "m.onnx"
    result = CliRunner().invoke(app, ["export", str(run), "--format", "onnx", "--out", str(out)])
    assert result.exit_code == 0, result.output
    meta = read_metadata(out)
    assert json.loads(meta["labels"]) == ["x", "y", "z"] and meta["sample_rate"] == "8000"
    assert meta["input_samples"] == "243" and meta["task"] == "multiclass"
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    for batch in (1, 7):  # the batch axis is dynamic
        x = (np.random.default_rng(batch).standard_normal((batch, 243)) * 0.3).astype(np.float32)
        logits, h3, h2, h1 = session.run(None, {"audio": x})
        ref = reference(run, x)
        np.testing.assert_allclose(logits, ref.logits, atol=1e-4, rtol=1e-4)
        np.testing.assert_allclose(h1, ref.hidden[-1], atol=1e-4, rtol=1e-4)
        np.testing.assert_allclose(h3, ref.hidden[0], atol=1e-4, rtol=1e-4)


def test_torchscript_export_matches(run, tmp_path):
    out = tmp_path / "m.pt"
    result = CliRunner().invoke(app, ["export", str(run), "-f", "torchscript", "-o", str(out), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["input_samples"] == "243"
    loaded = torch.jit.load(str(out))
    x = (np.random.default_rng(0).standard_normal((5, 243)) * 0.3).astype(np.float32)
    with torch.no_grad():
        logits = loaded(torch.from_numpy(x))[0]
    np.testing.assert_allclose(logits, reference(run, x).logits, atol=1e-4, rtol=1e-4)
    assert read_metadata(out)["model"] == "sample-3^4"
    result = CliRunner().invoke(app, ["export", str(run), "-f", "tflite", "-o", str(tmp_path / "m.x")])
    assert result.exit_code == 2


def test_tag_engine_onnx_equals_torch(run, tmp_path):
    pytest.importorskip("onnxruntime", reason="install samplecnn[onnx]")
    import soundfile as sf

    from samplecnn_cli.core.runtime import Runtime
    from samplecnn_cli.inference.library import load_library_model, tag_files

    sf.write(tmp_path / "a.wav", (np.random.default_rng(3).standard_normal(4000) * 0.2).astype(np.float32), 8000)
    files = [tmp_path / "a.wav"]
    a = tag_files(load_library_model(run, Runtime.cpu(), engine="onnx", batch_size=4), files, workers=0)[0]
    b = tag_files(load_library_model(run, Runtime.cpu("fp32"), engine="torch", batch_size=4), files, workers=0)[0]
    assert a["segments"] == b["segments"]
    np.testing.assert_allclose(list(a["scores"].values()), list(b["scores"].values()), atol=1e-4)
