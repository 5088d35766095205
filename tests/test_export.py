"""`samplecnn export`: ONNX (onnxruntime) and TorchScript files match PyTorch to 1e-4, dynamic batch, named
outputs (scores, logits, embedding, hidden layers), metadata for deployment and a model card beside the file."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from samplecnn_cli.cli.app import app
from samplecnn_cli.inference.export import OUTPUTS, read_metadata
from samplecnn_cli.runs import folder as runs
from tests.test_features_extract import fake_run


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return fake_run(tmp_path_factory.mktemp("exp") / "run", "sample-3^4", label_names=["x", "y", "z"])


def reference(run_dir, x):
    with torch.no_grad():
        return runs.load_run(run_dir).model.forward_all(torch.from_numpy(x))


def test_onnx_export_has_named_outputs_that_match_pytorch(run, tmp_path):
    ort = pytest.importorskip("onnxruntime", reason="install samplecnn[onnx]")
    out = tmp_path / "m.onnx"
    result = CliRunner().invoke(app, ["export", str(run), "--format", "onnx", "--out", str(out)])
    assert result.exit_code == 0, result.output
    meta = read_metadata(out)
    assert json.loads(meta["labels"]) == ["x", "y", "z"] and meta["sample_rate"] == "8000"
    assert meta["input_samples"] == "243" and meta["task"] == "multiclass" and meta["scores"] == "softmax"
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == OUTPUTS
    for batch in (1, 7):  # the batch axis is dynamic
        x = (np.random.default_rng(batch).standard_normal((batch, 243)) * 0.3).astype(np.float32)
        got = dict(zip(OUTPUTS, session.run(None, {"audio": x}), strict=True))
        ref = reference(run, x)
        np.testing.assert_allclose(got["logits"], ref.logits, atol=1e-4, rtol=1e-4)
        np.testing.assert_allclose(got["scores"], torch.softmax(ref.logits, dim=1), atol=1e-5)
        assert got["embedding"].shape == (batch, 512)
        np.testing.assert_allclose(got["embedding"], ref.embedding, atol=1e-4, rtol=1e-4)
        np.testing.assert_allclose(got["hidden_1"], ref.hidden[-1], atol=1e-4, rtol=1e-4)
        np.testing.assert_allclose(got["hidden_3"], ref.hidden[0], atol=1e-4, rtol=1e-4)


def test_metadata_says_how_to_feed_the_model(run, tmp_path):
    pytest.importorskip("onnx", reason="install samplecnn[onnx]")
    from samplecnn_cli import __version__

    out = tmp_path / "m.onnx"
    assert CliRunner().invoke(app, ["export", str(run), "-o", str(out)]).exit_code == 0
    meta = read_metadata(out)
    assert meta["resampler"] == "soxr" and meta["resampler_quality"] == "HQ"
    assert meta["hop_samples"] == meta["input_samples"]  # tag's default: non-overlapping windows
    assert meta["samplecnn_version"] == __version__ and json.loads(meta["outputs"]) == OUTPUTS
    assert json.loads(meta["training_data"])["task"] == "multiclass"
    assert "metrics" not in meta  # never evaluated


def test_test_metrics_of_the_exported_weights_travel_with_the_file(tmp_path):
    pytest.importorskip("onnx", reason="install samplecnn[onnx]")
    run = fake_run(tmp_path / "run", "sample-3^4", label_names=["x", "y", "z"])
    metrics = {"task": "multiclass", "split": "test", "clips": 30, "accuracy": 0.9, "macro_f1": 0.8,
               "checkpoint": "best", "confusion_matrix": [[1]],
               "inference": {"precision": "bf16", "as_trained": True, "forward": "eager"}}
    runs.write_json(run / "metrics.json", metrics)
    out = tmp_path / "a.onnx"
    assert CliRunner().invoke(app, ["export", str(run), "-o", str(out)]).exit_code == 0
    assert json.loads(read_metadata(out)["metrics"]) == {  # with the arithmetic that measured them
        "split": "test", "clips": 30, "accuracy": 0.9, "macro_f1": 0.8,
        "inference": {"precision": "bf16", "as_trained": True, "forward": "eager"}}
    runs.write_json(run / "metrics.json", {**metrics, "checkpoint": "last"})  # other weights: left out
    assert CliRunner().invoke(app, ["export", str(run), "-o", str(out)]).exit_code == 0
    assert "metrics" not in read_metadata(out)


def test_model_card_beside_the_file(run, tmp_path):
    pytest.importorskip("onnx", reason="install samplecnn[onnx]")
    from samplecnn_cli.inference.model_card import DEPLOY_EXAMPLE

    out = tmp_path / "tagger.onnx"
    result = CliRunner().invoke(app, ["export", str(run), "-o", str(out), "--json"])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert shown["card"] == str(tmp_path / "tagger.json") and shown["card_md"] == str(tmp_path / "tagger.md")
    card = json.loads((tmp_path / "tagger.json").read_text())
    assert card["name"] == "tagger" and card["model_file"] == "tagger.onnx" and card["classes"] == ["x", "y", "z"]
    assert card["sample_rate"] == 8000 and card["input_length"] == {"samples": 243, "seconds": 243 / 8000}
    outputs = {o["name"]: o for o in card["schema"]["outputs"]}
    assert list(outputs) == OUTPUTS
    assert outputs["scores"]["shape"] == ["batch", 3] and outputs["scores"]["output_purpose"] == "predictions"
    assert outputs["embedding"]["shape"] == ["batch", 512] and outputs["embedding"]["output_purpose"] == "embeddings"
    assert card["inference"]["resampler_quality"] == "HQ" and card["inference"]["hop_samples"] == 243
    text = (tmp_path / "tagger.md").read_text()
    assert text.startswith("# tagger") and DEPLOY_EXAMPLE.format(model_file="tagger.onnx") in text


def test_export_without_out_writes_beside_the_run_and_says_where(tmp_path):
    pytest.importorskip("onnx", reason="install samplecnn[onnx]")
    run = fake_run(tmp_path / "my run", "sample-3^4", label_names=["x", "y", "z"])
    result = CliRunner().invoke(app, ["export", str(run), "--format", "onnx"], env={"COLUMNS": None})
    assert result.exit_code == 0, result.output
    expected = (run / "export" / "my run.onnx").resolve()
    assert expected.is_file() and (run / "export" / "my run.json").is_file()
    assert f"Wrote {expected} (onnx)" in result.stdout  # the whole path on one line


def test_torchscript_export_matches(run, tmp_path):
    out = tmp_path / "m.pt"
    result = CliRunner().invoke(app, ["export", str(run), "-f", "torchscript", "-o", str(out), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["input_samples"] == "243"
    loaded = torch.jit.load(str(out))
    x = (np.random.default_rng(0).standard_normal((5, 243)) * 0.3).astype(np.float32)
    with torch.no_grad():
        scores, logits, embedding = loaded(torch.from_numpy(x))[:3]
    ref = reference(run, x)
    np.testing.assert_allclose(logits, ref.logits, atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(scores, torch.softmax(ref.logits, dim=1), atol=1e-5)
    np.testing.assert_allclose(embedding, ref.embedding, atol=1e-4, rtol=1e-4)
    assert read_metadata(out)["model"] == "sample-3^4" and (tmp_path / "m.json").is_file()
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
