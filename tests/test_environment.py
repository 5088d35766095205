"""The installed environment works together: every compiled extension loads, torch runs both model kinds,
and a sample-level training needs no torchaudio.

These fail when a new release of one package does not load with the others (torchaudio 2.11.1 with
torch 2.11.0 did not: an undefined symbol in libtorchaudio.so), which no unit test of our code sees.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from samplecnn_cli.bench.doctor import PACKAGES
from samplecnn_cli.models.mel import MelSpectrogram, mel_filterbank
from samplecnn_cli.runs.folder import installed_version

FIXTURE = Path(__file__).parent / "fixtures" / "torchaudio_mel.npz"


@pytest.mark.parametrize("module", sorted(PACKAGES))
def test_compiled_extension_loads(module):
    """Each check loads the package's compiled library, in a child so that a crash fails this test alone."""
    code, required = PACKAGES[module]
    if not required and installed_version(module) is None:
        pytest.skip(f"{module} is optional and not installed")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{module} does not load with torch {torch.__version__}:\n{proc.stderr[-2000:]}"


def test_frame_mel_model_builds_and_runs():
    from samplecnn_cli.models.registry import create_model

    model = create_model("frame-mel-729x243", num_outputs=5).eval()
    with torch.no_grad():
        out = model(torch.randn(2, model.input_samples))
    assert out.shape == (2, 5) and torch.isfinite(out).all()


def test_mel_equals_torchaudio_reference_fixture():
    """Against torchaudio's output saved by tests/fixtures/make_torchaudio_mel.py (runs without torchaudio)."""
    ref = np.load(FIXTURE)
    t = torch.arange(59049) / 22050.0
    x = (torch.sin(2 * np.pi * 440 * t) + 0.5 * torch.sin(2 * np.pi * (100 + 3000 * t) * t)).unsqueeze(0)
    mel = MelSpectrogram(22050, 729, 729, 729, 128)(x)[0, :, :8].numpy()
    np.testing.assert_allclose(mel, ref["mel_22050_729x729"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(mel_filterbank(365, 128, 8000).numpy(), ref["fb_8000"], atol=1e-6)
    np.testing.assert_array_equal(MelSpectrogram(8000, 729, 256, 243, 128).spectrogram.window.numpy(),
                                  ref["window_256"])
    # torchaudio's buffer names: frame-mel checkpoints written while torchaudio computed the front end load
    assert sorted(MelSpectrogram(8000, 729, 256, 243, 128).state_dict()) == ["mel_scale.fb", "spectrogram.window"]


def test_declared_dependencies_admit_no_broken_pair():
    """torchaudio is no core dependency; its extra pins one exact torchaudio/torch pair, which the lock holds."""
    import tomllib

    project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]
    assert not [d for d in project["dependencies"] if d.startswith("torchaudio")]
    extra = sorted(project["optional-dependencies"]["torchaudio"])
    assert len(extra) == 2 and all("==" in d and "*" not in d for d in extra), extra
    lock = (Path(__file__).parents[1] / "requirements.lock").read_text()
    for pin in extra:  # the lock installs the extra's exact pair, so the torchaudio comparisons run in CI
        assert f"\n{pin} " in lock, pin


@pytest.mark.parametrize("rate,window,hop", [(22050, 729, 729), (22050, 256, 243), (16000, 512, 27)])
def test_mel_equals_torchaudio(rate, window, hop):
    torchaudio = pytest.importorskip("torchaudio", reason="torchaudio is optional (pip install 'samplecnn[torchaudio]')")
    ref = torchaudio.transforms.MelSpectrogram(sample_rate=rate, n_fft=729, win_length=window, hop_length=hop,
                                               n_mels=128, power=1.0, center=False)
    mine = MelSpectrogram(rate, 729, window, hop, 128)
    x = torch.randn(3, 59049, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(mine(x), ref(x), rtol=1e-5, atol=1e-5)
    assert sorted(mine.state_dict()) == sorted(ref.state_dict())  # old checkpoints load unchanged


BLOCK_TORCHAUDIO = """
import sys
class _Block:
    def find_spec(self, name, path=None, target=None):
        if name == "torchaudio" or name.startswith("torchaudio."):
            raise ImportError("torchaudio is blocked by the test")
sys.meta_path.insert(0, _Block())
from samplecnn_cli.cli.app import run
sys.argv = ["samplecnn", *sys.argv[1:]]
run()
"""


def test_sample_and_mel_training_need_no_torchaudio(tmp_path):
    """A training step of a sample-level and a frame-mel model, with any import of torchaudio failing."""
    from tests._store_fixtures import make_store

    store = make_store(tmp_path / "store", task="multiclass", sample_rate=8000, seconds=0.5)
    for model in ("sample-3^3", "frame-mel-729"):
        out = tmp_path / model.replace("^", "_")
        proc = subprocess.run([sys.executable, "-c", BLOCK_TORCHAUDIO, "train", model, "--data", str(store),
                               "--out", str(out), "--epochs", "1", "--precision", "fp32"],
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert (out / "checkpoints" / "last.pt").is_file()
