"""Shared test set-up: real data location, a non-interactive matplotlib, no stray workspace."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    """../shared/data, or skip: a user's fresh clone has no real data beside it."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not present at {SHARED_DATA} (only in the project's own checkout)")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _no_user_workspace(monkeypatch):
    # A developer's SAMPLECNN_WORKSPACE must not leak into tests.
    monkeypatch.delenv("SAMPLECNN_WORKSPACE", raising=False)


@pytest.fixture
def inference_sandbox(tmp_path, monkeypatch):
    """One thread and a private backend cache: inference tests neither read nor write the user's
    ~/.cache/samplecnn choices, and time their candidates alike."""
    import torch

    from samplecnn_cli.core.context import CACHE_ENV

    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache.json"))  # what the CLI's context reads
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
