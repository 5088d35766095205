"""Model behaviour per family: shapes, intermediates, gradients, the mel front end."""

from __future__ import annotations

import pytest
import torch

from samplecnn_cli.models.base import channel_plan
from samplecnn_cli.models.registry import create_model, list_models

FAMILIES = ["sample-3^9", "frame-mel-729x243", "frame-raw-243"]


def test_channel_plan_matches_table1():
    assert channel_plan(10) == [128, 128, 128, 256, 256, 256, 256, 256, 512, 512]
    assert channel_plan(3) == [128, 512, 512]


@pytest.mark.parametrize("name", list_models())
def test_every_listed_model_maps_a_batch(name):
    model = create_model(name, num_outputs=5).eval()
    with torch.no_grad():
        assert model(torch.randn(1, model.input_samples)).shape == (1, 5)


def test_channel_dimension_is_optional():
    model = create_model("sample-2^5", num_outputs=5).eval()
    x = torch.randn(2, model.input_samples)
    with torch.no_grad():
        assert torch.equal(model(x), model(x.unsqueeze(1)))


@pytest.mark.parametrize("name", FAMILIES)
def test_forward_backward_per_family(name):
    torch.manual_seed(0)
    model = create_model(name, num_outputs=4).train()
    x = torch.randn(2, model.input_samples)
    loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x), torch.ones(2, 4))
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("name", FAMILIES)
def test_forward_all_exposes_last_three_layers_and_embedding(name):
    model = create_model(name, num_outputs=3).eval()
    x = torch.randn(2, model.input_samples)
    with torch.no_grad():
        out = model.forward_all(x)
        logits = model(x)
    assert torch.allclose(out.logits, logits)
    assert len(out.hidden) == 3
    assert all(h.shape[0] == 2 and h.dim() == 3 for h in out.hidden)
    assert out.hidden[-1].shape[1] == 512
    assert out.embedding.shape == (2, 512)
    assert torch.allclose(out.embedding, out.hidden[-1].mean(-1))
    # The classifier is a linear map of the embedding: the logits follow from it without a re-run.
    assert torch.allclose(model.classifier(out.embedding), logits, atol=1e-5)


def test_every_conv_has_batchnorm_and_relu():
    model = create_model("sample-3^9")
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv1d)]
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm1d)]
    assert len(convs) == len(bns) == 11
    assert model.dropout.p == 0.5


def test_bad_input_shape():
    model = create_model("sample-2^5")
    with pytest.raises(ValueError, match="expected input"):
        model(torch.randn(2, 3, model.input_samples))


def test_mel_front_end_is_log_compressed_and_normalised():
    model = create_model("frame-mel-729").eval()
    x = torch.randn(1, model.input_samples) * 0.1
    spec = model.spectrogram(x)
    assert spec.shape == (1, 128, 81)  # 59,049 / 729 frames, 128 bands
    assert (spec >= 0).all()  # log(1 + 10|A|) is never negative
    model.set_input_stats(mean=float(spec.mean()), std=float(spec.std()))
    normalised = model.front(model._pad(model._as_batch(x), 729))
    assert abs(float(normalised.mean())) < 1e-4
    assert abs(float(normalised.std()) - 1.0) < 1e-3
    state = model.state_dict()
    assert "front.input_mean" in state and "front.input_std" in state


def test_frame_models_yield_power_of_three_frames():
    for name, frames in [("frame-raw-729x243", 243), ("frame-mel-243x81", 729), ("frame-raw-81", 729)]:
        model = create_model(name)
        assert model.forward_front(model._as_batch(torch.zeros(1, 59049))).shape[-1] == frames


def test_bf16_autocast_forward():
    model = create_model("sample-3^5", num_outputs=2).eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(torch.randn(2, model.input_samples))
    assert out.shape == (2, 2) and torch.isfinite(out.float()).all()
