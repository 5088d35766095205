"""`samplecnn extract`: pooling over whole clips, the feature file's layout, errors, streaming."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from samplecnn_cli.cli.app import app
from samplecnn_cli.core.errors import DataError, RunError, UsageError
from samplecnn_cli.core.runtime import Runtime
from samplecnn_cli.data.features_file import FeatureFile, parse_layers
from samplecnn_cli.data.store import SplitWriter, StoreSplit
from samplecnn_cli.features.extract import clip_blocks, extract_features
from samplecnn_cli.models.registry import create_model
from samplecnn_cli.runs import folder as runs
from tests._store_fixtures import segments_of

LABELS = ["a", "b", "c"]


def fake_run(run_dir: Path, model_name: str, *, sample_rate: int = 8000, task: str = "multiclass",
             label_names: list[str] = LABELS, seed: int = 0) -> Path:
    """A run directory holding an untrained (randomly initialised) model, as `samplecnn train` lays it out."""
    torch.manual_seed(seed)
    kwargs = {"num_outputs": len(label_names), "sample_rate": sample_rate}
    model = create_model(model_name, **kwargs)
    # non-trivial BN statistics, so eval-mode BN is not an identity
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm1d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 2.0)
    run_dir.mkdir(parents=True)
    runs.write_config(run_dir, {"kind": "train", "model": model_name, "label_names": label_names, "task": task,
                                "sample_rate": sample_rate})
    runs.save_checkpoint(run_dir / "checkpoints" / "best.pt", model_name=model_name, model_kwargs=kwargs,
                         state_dict=model.state_dict(), label_names=label_names, task=task, sample_rate=sample_rate)
    return run_dir


def varied_store(directory: Path, *, sample_rate: int = 8000, lengths=(300, 40, 1000, 129), seed: int = 0,
                 splits=("train", "valid", "test")) -> Path:
    """Clips of different lengths (one shorter than any segment) in every split."""
    rng = np.random.default_rng(seed)
    for split in splits:
        with SplitWriter(directory / f"{split}.h5", sample_rate=sample_rate, label_names=LABELS,
                         task="multiclass", dataset="varied", split=split) as writer:
            for i, length in enumerate(lengths):
                audio = (rng.standard_normal(length) * 8000).astype(np.int16)
                writer.append(f"{split}-{i}", f"{i}.wav", audio, np.eye(3, dtype=bool)[i % 3])
    return directory


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models on a busy 2-core machine: one intra-op thread avoids spinning waits (100x faster here)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("runs")
    return fake_run(root / "small", "sample-2^5"), fake_run(root / "other", "sample-3^3", seed=1)


def test_pooling_equals_direct_computation_over_all_segments(tmp_path, two_runs):
    store = varied_store(tmp_path / "store")
    out = tmp_path / "f.h5"
    # batch 3: clips' segments are split across forward passes and several clips share one
    summary = extract_features(list(two_runs), store, out, batch_size=3)
    assert summary["splits"] == {"train": 4, "valid": 4, "test": 4}
    ff = FeatureFile(out)
    split = StoreSplit(store / "test.h5")
    for run_dir, key in zip(two_runs, ff.runs, strict=True):
        model = runs.load_run(run_dir).model
        for index in range(len(split)):
            segments = torch.from_numpy(segments_of(split.read_float(index), model.input_samples))
            with torch.no_grad():
                hidden = model.forward_all(segments).hidden
            for layer in (-3, -2, -1):
                h = hidden[layer]
                for pooling, expected in (("max", h.amax(dim=(0, 2))), ("avg", h.mean(dim=(0, 2)))):
                    got = ff.read("test", ff.select((key,), (layer,), (pooling,)), rows=slice(index, index + 1))[0]
                    np.testing.assert_allclose(got, expected.numpy(), rtol=1e-4, atol=1e-5)


def test_feature_file_layout_and_provenance(tmp_path, two_runs):
    store = varied_store(tmp_path / "store")
    out = tmp_path / "f.h5"
    extract_features(list(two_runs), store, out, layers=(-1, -3), poolings=("avg",), splits=("train", "test"))
    ff = FeatureFile(out)
    assert ff.splits == ["train", "test"]
    assert ff.label_names == LABELS and ff.task == "multiclass" and ff.sample_rate == 8000
    assert [(b.run, b.model, b.layer, b.pooling) for b in ff.blocks] == [
        ("small", "sample-2^5", -3, "avg"), ("small", "sample-2^5", -1, "avg"),
        ("other", "sample-3^3", -3, "avg"), ("other", "sample-3^3", -1, "avg")]
    assert {b.input_samples for b in ff.blocks} == {64, 81}
    # blocks tile the columns without gaps
    assert [b.start for b in ff.blocks] == [0] + [b.stop for b in ff.blocks[:-1]]
    with h5py.File(out) as f:
        assert f["test/features"].shape == (4, ff.blocks[-1].stop)
        assert np.array_equal(f["test/labels"][:], StoreSplit(store / "test.h5").labels)
    assert ff.clip_ids("test") == [f"test-{i}" for i in range(4)]
    assert not list(tmp_path.glob(".*tmp*")), "the temporary file must be renamed away"
    # selection by model name equals selection by run key
    assert ff.select(("sample-3^3",)) == ff.select(("other",))
    with pytest.raises(UsageError, match="no run nope"):
        ff.select(("nope",))


def test_sample_rate_mismatch_is_a_clear_error(tmp_path, two_runs):
    store = varied_store(tmp_path / "store", sample_rate=16000)
    with pytest.raises(DataError, match=r"sample-rate mismatch: .* expects 8000 Hz .* 16000 Hz"):
        extract_features([two_runs[0]], store, tmp_path / "f.h5")
    assert not (tmp_path / "f.h5").exists()
    result = CliRunner().invoke(app, ["extract", str(two_runs[0]), "--data", str(store), "--out",
                                      str(tmp_path / "f.h5")])
    assert result.exit_code == 1
    assert "sample-rate mismatch" in result.output and "Traceback" not in result.output


def test_bad_options_and_runs(tmp_path, two_runs):
    store = varied_store(tmp_path / "store", splits=("train",))
    with pytest.raises(UsageError):
        parse_layers("-4")
    with pytest.raises(DataError, match="no 'test' split"):
        extract_features([two_runs[0]], store, tmp_path / "f.h5", splits=("test",))
    transfer_like = tmp_path / "t"
    transfer_like.mkdir()
    from samplecnn_cli.models.transfer import TransferMLP

    runs.write_config(transfer_like, {"kind": "transfer", "model": "transfer-mlp"})
    runs.save_checkpoint(transfer_like / "checkpoints" / "best.pt", model_name="transfer-mlp",
                         model_kwargs={"in_features": 4, "num_outputs": 3, "hidden": 8, "task": "multiclass"},
                         state_dict=TransferMLP(4, 3, hidden=8, task="multiclass").state_dict(),
                         label_names=LABELS, task="multiclass", sample_rate=8000, kind="transfer")
    with pytest.raises(RunError, match="transfer run"):
        extract_features([transfer_like], store, tmp_path / "f.h5")
    result = CliRunner().invoke(app, ["extract", str(two_runs[0]), "-d", str(store), "-o", str(tmp_path / "f.h5"),
                                      "--layers", "-7"])
    assert result.exit_code == 2 and "do not exist" in result.output


def test_many_small_clips_stream_in_bounded_blocks(tmp_path, two_runs):
    """300 clips: rows are written block by block; every row is the clip's own features."""
    lengths = [30 + (i * 37) % 200 for i in range(300)]
    store = varied_store(tmp_path / "store", lengths=lengths, splits=("test",))
    split = StoreSplit(store / "test.h5")
    blocks = list(clip_blocks(split, 64, 16))
    assert sum(len(b) for b in blocks) == 300 and len(blocks) > 10
    assert max(len(b) for b in blocks) <= 16  # a block never holds more clips than a batch of segments
    assert [i for b in blocks for i in b] == list(range(300))
    out = tmp_path / "many.h5"
    result = CliRunner().invoke(app, ["extract", str(two_runs[0]), "-d", str(store), "-o", str(out),
                                      "--splits", "test", "-b", "16", "--layers", "-1", "--json", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["splits"] == {"test": 300} and summary["device"] == "cpu"
    ff = FeatureFile(out)
    feats = ff.read("test", ff.blocks)
    assert feats.shape == (300, 1024) and np.isfinite(feats).all()
    model = runs.load_run(two_runs[0]).model
    for index in (0, 151, 299):
        with torch.no_grad():
            h = model.forward_all(torch.from_numpy(segments_of(split.read_float(index), 64))).hidden[-1]
        np.testing.assert_allclose(feats[index, :512], h.amax(dim=(0, 2)).numpy(), rtol=1e-4, atol=1e-5)


def test_bf16_precision_stays_close(tmp_path, two_runs):
    store = varied_store(tmp_path / "store", splits=("test",))
    extract_features([two_runs[0]], store, tmp_path / "a.h5", Runtime.cpu("fp32"), layers=(-1,))
    extract_features([two_runs[0]], store, tmp_path / "b.h5", Runtime.cpu("bf16"), layers=(-1,))
    a, b = (FeatureFile(tmp_path / n) for n in ("a.h5", "b.h5"))
    fa, fb = a.read("test", a.blocks), b.read("test", b.blocks)
    assert np.abs(fa - fb).max() <= 0.05 * max(1.0, np.abs(fa).max())
    with pytest.raises(UsageError):
        extract_features([two_runs[0]], store, tmp_path / "c.h5", Runtime.resolve("cpu", "fp8"))
