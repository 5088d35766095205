"""`samplecnn tsne`: one point per selected clip, figure + JSON, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from samplecnn_cli.cli.app import app
from samplecnn_cli.core.errors import DataError, UsageError
from samplecnn_cli.data.store import SplitWriter
from samplecnn_cli.features.extract import extract_features
from samplecnn_cli.features.tsne import tsne_plot
from tests.test_features_extract import fake_run

TAGS = ["piano", "techno", "rock"]
# (piano, techno, rock) per test clip: 5 piano only, 4 techno only, 2 both, 3 rock only
TEST_CLIPS = [(1, 0, 0)] * 5 + [(0, 1, 0)] * 4 + [(1, 1, 0)] * 2 + [(0, 0, 1)] * 3


@pytest.fixture(scope="module")
def features(tmp_path_factory) -> Path:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("tsne")
    rng = np.random.default_rng(0)
    for split, rows in (("train", TEST_CLIPS[:4]), ("valid", TEST_CLIPS[:2]), ("test", TEST_CLIPS)):
        with SplitWriter(root / "store" / f"{split}.h5", sample_rate=8000, label_names=TAGS, task="multilabel",
                         dataset="tags", split=split) as writer:
            for i, row in enumerate(rows):
                audio = (rng.standard_normal(400) * (2000 + 4000 * row[0])).astype(np.int16)
                writer.append(f"{split}-{i:02d}", f"{i}.wav", audio, np.array(row, bool))
    run = fake_run(root / "run", "sample-2^5", task="multilabel", label_names=TAGS)
    out = root / "features.h5"
    extract_features([run], root / "store", out, batch_size=64)
    torch.set_num_threads(before)
    return out


def test_one_point_per_clip_with_exactly_one_label(tmp_path, features):
    out = tmp_path / "fig.png"
    result = CliRunner().invoke(app, ["tsne", str(features), "--layer", "-3", "--labels", "piano,techno",
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads(out.with_suffix(".json").read_text())
    points = data["points"]
    assert len(points) == 9  # 5 piano-only + 4 techno-only; the 2 clips with both are left out
    assert data["excluded_several"] == 2
    assert {p["clip_id"] for p in points} == {f"test-{i:02d}" for i in range(9)}
    assert [p["label"] for p in points] == ["piano"] * 5 + ["techno"] * 4
    assert all(np.isfinite([p["x"], p["y"]]).all() for p in points)
    assert data["layer"] == -3 and data["model"] == "sample-2^5"


def test_layer_choice_changes_the_embedding(tmp_path, features):
    a = tsne_plot(features, tmp_path / "a.png", layer=-3, labels=["piano", "rock"])
    b = tsne_plot(features, tmp_path / "b.svg", layer=-1, labels=["piano", "rock"])
    assert len(a["points"]) == len(b["points"]) == 10  # 5 + 2 piano (with techno, not rock) + 3 rock
    assert (tmp_path / "b.svg").read_text().lstrip().startswith("<?xml")
    assert [p["x"] for p in a["points"]] != [p["x"] for p in b["points"]]


def test_unknown_label_lists_the_available_ones(tmp_path, features):
    with pytest.raises(UsageError) as info:
        tsne_plot(features, tmp_path / "x.png", layer=-3, labels=["piano", "jazz"])
    assert "jazz" in info.value.message and "piano, techno, rock" in info.value.hint
    result = CliRunner().invoke(app, ["tsne", str(features), "--labels", "jazz", "--out", str(tmp_path / "x.png")])
    assert result.exit_code == 2 and "available: piano, techno, rock" in result.output


def test_too_few_clips_is_a_clear_error(tmp_path, features):
    with pytest.raises(DataError, match="only 2 clip"):
        tsne_plot(features, tmp_path / "x.png", layer=-3, labels=["piano"], split="valid")
    assert not (tmp_path / "x.png").exists()
