"""The inference core: one batching loop, pluggable sources and reducers (inference/predictor.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from samplecnn_cli.core.runtime import Runtime, task_loss
from samplecnn_cli.data.store import Store
from samplecnn_cli.inference.predictor import Clip, Predictor, array_clips, store_clips
from samplecnn_cli.inference.reducers import LayerPools
from samplecnn_cli.models.registry import create_model
from samplecnn_cli.training.steps import validate_clips
from tests._store_fixtures import make_store, segments_of

pytestmark = pytest.mark.usefixtures("inference_sandbox")


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    return Store(make_store(tmp_path_factory.mktemp("p") / "store", task="multiclass", clips=(2, 2, 6),
                            seconds=0.05)).split("test")


def model_of(seed: int = 0):
    torch.manual_seed(seed)
    return create_model("sample-3^3", num_outputs=3, sample_rate=8000).eval()


@pytest.mark.parametrize("batch_size", [1, 3, 64])
def test_every_reducer_equals_the_model_clip_by_clip_whatever_the_batching(split, batch_size):
    model = model_of()
    predictor = Predictor.for_model(model, Runtime.cpu(), task="multiclass", batch_size=batch_size)
    reducers = ["scores", "window_scores", "embedding", "loss", LayerPools((-2, -1))]
    results = list(predictor.run(store_clips(split), reducers))
    assert [r.key for r in results] == list(range(len(split)))
    loss_of = task_loss("multiclass")
    for i, r in enumerate(results):
        x = torch.from_numpy(segments_of(split.read_float(i), 81))
        with torch.no_grad():
            out = model.forward_all(x)
        scores = torch.softmax(out.logits, 1)
        np.testing.assert_allclose(r.scores, scores.mean(0), atol=1e-5)
        np.testing.assert_allclose(r.window_scores, scores, atol=1e-5)
        np.testing.assert_allclose(r.embedding, out.hidden[-1].mean(-1).mean(0), atol=1e-4)
        labels = torch.from_numpy(np.repeat(split.labels[i][None], len(x), 0))
        assert r.loss == pytest.approx(float(loss_of(out.logits, labels)), abs=1e-4)
        for layer in (-2, -1):
            np.testing.assert_allclose(r.features[layer]["max"], out.hidden[layer].amax(dim=(0, 2)), atol=1e-4)
            np.testing.assert_allclose(r.features[layer]["avg"], out.hidden[layer].mean(dim=(0, 2)), atol=1e-4)


def test_clips_that_cannot_be_read_keep_their_place(split):
    predictor = Predictor.for_model(model_of(), Runtime.cpu(), task="multiclass", batch_size=4)
    clips = [Clip("a", np.zeros(200, np.float32)), Clip("bad", None, error="unreadable"),
             Clip("c", np.ones(30, np.float32) * 0.1)]
    results = list(predictor.run(clips))
    assert [(r.key, r.error) for r in results] == [("a", None), ("bad", "unreadable"), ("c", None)]
    assert results[1].scores is None and results[2].short and results[2].windows == 1
    assert [r.windows for r in predictor.run(array_clips([np.zeros(400, np.float32)]), hop=27)] == [12]


def test_training_validation_runs_through_the_core_with_the_model_as_it_is(split):
    """validate_clips: the eager model under the run's autocast; loss = mean over every segment."""
    model = model_of(1)
    segments = [torch.from_numpy(segments_of(split.read_float(i), 81)) for i in range(len(split))]
    labels = torch.cat([torch.from_numpy(np.repeat(split.labels[i][None], len(s), 0)) for i, s in enumerate(segments)])
    with torch.no_grad():
        logits = model(torch.cat(segments))
    model.train()
    result = validate_clips(model, split, Runtime.cpu().step_precision(), batch_size=5, label_names=["a", "b", "c"])
    assert result["loss"] == pytest.approx(float(task_loss("multiclass")(logits, labels)), abs=1e-5)
    assert result["metric"] == "valid_accuracy" and 0.0 <= result["value"] <= 1.0
    assert model.training  # handed back in training mode
