"""The inference package: BN folding, backends equal to the eager fp32 model, measured choice + cache."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from samplecnn_cli.core.runtime import Runtime
from samplecnn_cli.inference import backend
from samplecnn_cli.inference.backend import FastModel, choose
from samplecnn_cli.inference.fold import fold_batch_norm
from samplecnn_cli.inference.predictor import window_starts, windows_of
from samplecnn_cli.models.registry import create_model


def trained_like(name: str, seed: int = 0, **kwargs):
    """A model with non-trivial BN statistics and affine parameters, as after training."""
    torch.manual_seed(seed)
    model = create_model(name, **kwargs)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm1d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.3, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.1, 0.1)
    return model.eval()


pytestmark = pytest.mark.usefixtures("inference_sandbox")


@pytest.mark.parametrize("name", ["sample-3^3", "sample-2^5", "frame-raw-81", "frame-mel-81"])
def test_folded_copy_equals_model_and_leaves_it_alone(name):
    try:
        model = trained_like(name, num_outputs=5, sample_rate=8000)
    except Exception as exc:  # a name the registry lacks
        pytest.skip(f"{name}: {exc}")
    x = torch.randn(4, model.input_samples) * 0.3
    state = {k: v.clone() for k, v in model.state_dict().items()}
    folded = fold_batch_norm(model)
    with torch.no_grad():
        a, b = model.forward_all(x), folded.forward_all(x)
    torch.testing.assert_close(b.logits, a.logits, rtol=1e-5, atol=1e-5)
    for ha, hb in zip(a.hidden, b.hidden, strict=True):
        torch.testing.assert_close(hb, ha, rtol=1e-4, atol=1e-5)
    assert not any(isinstance(m, torch.nn.BatchNorm1d) for m in folded.modules())
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items()), "the original must not change"


@pytest.mark.parametrize("name", ["sample-3^4", "sample-2^5", "sample-3-3-2-4-2"])
@pytest.mark.parametrize("which", ["eager", "plan", "plan-jit"])
def test_fp32_backends_match_eager_within_1e3(which, name):
    model = trained_like(name, num_outputs=6, sample_rate=8000)
    x = torch.randn(5, model.input_samples) * 0.3
    with torch.no_grad():
        ref = model.forward_all(x)
    logits, hidden = FastModel(model, which, "fp32")(x)
    np.testing.assert_allclose(torch.sigmoid(logits), torch.sigmoid(ref.logits), atol=1e-3)
    np.testing.assert_allclose(logits, ref.logits, atol=1e-4, rtol=1e-4)
    for h, r in zip(hidden, ref.hidden, strict=True):
        assert h.shape == r.shape
        np.testing.assert_allclose(h, r, atol=1e-4, rtol=1e-4)


def test_bf16_backend_stays_close():
    model = trained_like("sample-3^4", num_outputs=6, sample_rate=8000)
    x = torch.randn(5, model.input_samples) * 0.3
    with torch.no_grad():
        ref = torch.sigmoid(model(x))
    logits, _ = FastModel(model, "plan", "bf16")(x)
    assert (torch.sigmoid(logits) - ref).abs().max() < 2e-2


def test_choice_is_measured_once_then_cached(tmp_path):
    model = trained_like("sample-3^3", num_outputs=3, sample_rate=8000)
    fast, choice = choose(model, Runtime.cpu("fp32"), cache=tmp_path / "cache.json")
    assert choice.measured and set(choice.measured) == {"eager/fp32", "plan/fp32", "plan-jit/fp32"}
    assert choice.precision == "fp32" and choice.batch_size in backend.BATCH_CANDIDATES
    assert f"{choice.backend}/fp32" == max(choice.measured, key=choice.measured.get)
    cache = json.loads((tmp_path / "cache.json").read_text())
    assert list(cache.values()) == [{"backend": choice.backend, "precision": "fp32", "batch_size": choice.batch_size}]
    _, again = choose(model, Runtime.cpu("fp32"), cache=tmp_path / "cache.json")
    assert again.measured is None and again.backend == choice.backend  # read back, not remeasured
    _, explicit = choose(model, Runtime.cpu("fp32"), batch_size=3, cache=tmp_path / "cache.json")
    assert explicit.batch_size == 3


def test_changed_backend_code_measures_again(tmp_path, monkeypatch):
    model = trained_like("sample-3^3", num_outputs=3, sample_rate=8000)
    choose(model, Runtime.cpu("fp32"), cache=tmp_path / "cache.json")
    monkeypatch.setattr(backend, "code_revision", lambda: "changed")  # backend.py, plan.py or fold.py edited
    _, after_change = choose(model, Runtime.cpu("fp32"), cache=tmp_path / "cache.json")
    assert after_change.measured is not None  # the old choice is not trusted for changed code
    assert len(json.loads((tmp_path / "cache.json").read_text())) == 2


def test_auto_precision_never_offers_bf16_without_native_support(monkeypatch):
    model = trained_like("sample-3^3", num_outputs=3, sample_rate=8000)
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")
    runtime = Runtime.resolve("cpu", "auto")
    assert runtime.precision == "fp32" and runtime.inference_precisions() == ["fp32"]
    assert {p for _, p in backend.candidates(model, runtime)} == {"fp32"}


def test_windows_with_hop_and_short_files():
    assert list(window_starts(100, 40, 40)) == [0, 40]  # the tail that does not fill a window is dropped
    assert list(window_starts(100, 40, 20)) == [0, 20, 40, 60]
    assert list(window_starts(10, 40, 20)) == [0]
    audio = np.arange(100, dtype=np.float32)
    w = windows_of(audio, 40, 20)
    assert w.shape == (4, 40) and w[2, 0] == 40 and w[3, -1] == 99
    short = windows_of(audio[:10], 40, 20)
    assert short.shape == (1, 40) and short[0, 9] == 9 and not short[0, 10:].any()


def test_predict_split_reports_progress_and_matches_eager(tmp_path):
    from samplecnn_cli.core.runtime import Runtime
    from samplecnn_cli.data.store import StoreSplit
    from samplecnn_cli.inference.evaluate import predict_split
    from samplecnn_cli.inference.predictor import Predictor
    from tests.test_features_extract import varied_store

    store = varied_store(tmp_path / "store", splits=("test",), lengths=(300, 40, 1000, 129, 500))
    split = StoreSplit(store / "test.h5")
    model = trained_like("sample-3^3", num_outputs=3, sample_rate=8000)
    seen = []
    predictor = Predictor.for_model(model, Runtime.cpu(), task="multiclass", batch_size=4)
    scores, targets = predict_split(predictor, split, progress=lambda done, total: seen.append(done))
    assert seen == sorted(seen) and seen[-1] == len(split) == 5 and len(seen) > 1
    for i in range(len(split)):
        with torch.no_grad():
            ref = torch.softmax(model(torch.from_numpy(windows_of(split.read_float(i), 81, 81).copy())), -1).mean(0)
        np.testing.assert_allclose(scores[i], ref.numpy(), atol=1e-5)
