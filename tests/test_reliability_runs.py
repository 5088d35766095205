"""Issue 11 item 5: a damaged config.toml or checkpoint is one clear line, never PyTorch's text."""

from __future__ import annotations

import os

import pytest
import torch

from samplecnn_cli.core.errors import RunError
from samplecnn_cli.runs.folder import CHECKPOINT_FORMAT, load_checkpoint, read_config


@pytest.fixture
def checkpoint(tmp_path):
    path = tmp_path / "best.pt"
    torch.save({"format": CHECKPOINT_FORMAT, "w": torch.randn(200, 50)}, path)
    return path


def test_whole_checkpoint_loads(checkpoint):
    assert load_checkpoint(checkpoint)["format"] == CHECKPOINT_FORMAT


@pytest.mark.parametrize("keep", [0, 10, 0.5, -10])
def test_truncated_checkpoint_says_truncated(checkpoint, keep):
    data = checkpoint.read_bytes()
    cut = int(len(data) * keep) if isinstance(keep, float) else (keep if keep >= 0 else len(data) + keep)
    checkpoint.write_bytes(data[:cut])
    with pytest.raises(RunError) as err:
        load_checkpoint(checkpoint)
    assert err.value.message == f"checkpoint {checkpoint} is truncated or damaged"


@pytest.mark.parametrize("payload", [b"hello", os.urandom(3000), b"\x80\x02}q\x00."])
def test_garbage_checkpoint_is_not_a_checkpoint(checkpoint, payload):
    checkpoint.write_bytes(payload)
    with pytest.raises(RunError) as err:
        load_checkpoint(checkpoint)
    assert err.value.message == f"{checkpoint} is not a samplecnn checkpoint"
    assert "weights_only" not in str(err.value)


def test_checkpoint_of_another_program(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"state_dict": {"w": torch.zeros(2)}}, path)
    with pytest.raises(RunError, match="is not a samplecnn checkpoint"):
        load_checkpoint(path)


@pytest.mark.parametrize("content", [b"a = [", b"\xff\xfe\x00", b"model = 1\nmodel = 2\n"])
def test_corrupt_config_is_one_line(tmp_path, content):
    (tmp_path / "config.toml").write_bytes(content)
    with pytest.raises(RunError) as err:
        read_config(tmp_path)
    assert "config.toml is unreadable or damaged" in err.value.message
    assert "\n" not in err.value.message
