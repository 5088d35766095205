"""`samplecnn embed`: the HDF5 layout read back with plain h5py, values equal to the model's own."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import soundfile as sf
import torch
from typer.testing import CliRunner

from samplecnn_cli.cli.app import app
from samplecnn_cli.data.audio import decode
from samplecnn_cli.runs import folder as runs
from tests.test_features_extract import fake_run

pytestmark = pytest.mark.usefixtures("inference_sandbox")


def test_embed_layout_and_values(tmp_path):
    run = fake_run(tmp_path / "run", "sample-3^3")
    lib = tmp_path / "lib"
    lib.mkdir()
    rng = np.random.default_rng(1)
    for i, length in enumerate((50, 800, 1500)):
        sf.write(lib / f"s{i}.wav", (rng.standard_normal(length) * 0.3).astype(np.float32), 8000)
    (lib / "zz.wav").write_bytes(b"")
    out = tmp_path / "emb.h5"
    result = CliRunner().invoke(app, ["embed", str(run), str(lib), "--out", str(out), "--hop", "0.005",
                                      "-j", "0", "-b", "5", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["files"] == 3
    model = runs.load_run(run).model
    with h5py.File(out, "r") as f:
        assert f.attrs["format"] == "samplecnn-embeddings" and f.attrs["sample_rate"] == 8000
        assert f.attrs["input_samples"] == 81 and f.attrs["hop_seconds"] == pytest.approx(40 / 8000)
        paths = [p.decode() for p in f["paths"][:]]
        assert [p.rsplit("/", 1)[-1] for p in paths] == ["s0.wav", "s1.wav", "s2.wav"]
        assert f["embedding"].shape == (3, 512) and list(f["short"][:]) == [True, False, False]
        assert [p.decode().rsplit("/", 1)[-1] for p in f["failed_paths"][:]] == ["zz.wav"]
        blocks = json.loads(f["feature_blocks"][()])
        assert [(b["layer"], b["pooling"]) for b in blocks][:2] == [(-3, "max"), (-3, "avg")]
        offsets = f["window_offsets"][:]
        assert list(np.diff(offsets)) == list(f["windows"][:]) == [1, (800 - 81) // 40 + 1, (1500 - 81) // 40 + 1]
        for i in (0, 2):
            audio = decode(lib / f"s{i}.wav", 8000)
            if len(audio) < 81:
                audio = np.pad(audio, (0, 81 - len(audio)))
            starts = range(0, len(audio) - 81 + 1, 40)
            windows = torch.from_numpy(np.stack([audio[s:s + 81] for s in starts]))
            with torch.no_grad():
                ref = model.forward_all(windows)
            np.testing.assert_allclose(f["window_embedding"][offsets[i]:offsets[i + 1]], ref.embedding, atol=1e-4)
            np.testing.assert_allclose(f["embedding"][i], ref.embedding.mean(0), atol=1e-4)
            for b in blocks:
                h = ref.hidden[b["layer"]]
                want = h.amax(dim=(0, 2)) if b["pooling"] == "max" else h.mean(dim=(0, 2))
                np.testing.assert_allclose(f["features"][i, b["start"]:b["stop"]], want, atol=1e-4, rtol=1e-4)
    assert not list(tmp_path.glob(".emb.h5.tmp*"))


def test_embed_resumes_after_an_interruption_like_tag(tmp_path):
    """An embed stopped after two files keeps them in its partial file; the same call again embeds only
    the rest, and the finished file equals an uninterrupted one."""
    from samplecnn_cli.core.runtime import Runtime
    from samplecnn_cli.inference.library import collect_files, embed_to_file, load_library_model

    run = fake_run(tmp_path / "run", "sample-3^3")
    lib = tmp_path / "lib"
    lib.mkdir()
    rng = np.random.default_rng(2)
    for i in range(5):
        sf.write(lib / f"f{i}.wav", (rng.standard_normal(300 + 100 * i) * 0.3).astype(np.float32), 8000)
    files = collect_files([lib])
    model = load_library_model(run, Runtime.cpu("fp32"), batch_size=4)
    straight = tmp_path / "straight.h5"
    embed_to_file(model, files, straight, layers=(-1,), workers=0)

    out, seen = tmp_path / "emb.h5", []

    def stop_after_two(r):
        seen.append(r.path)
        if len(seen) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        embed_to_file(model, files, out, layers=(-1,), workers=0, on_file=stop_after_two)
    assert not out.exists() and (tmp_path / ".emb.h5.partial").is_file()
    again = []
    summary = embed_to_file(model, files, out, layers=(-1,), workers=0, on_file=lambda r: again.append(r.path))
    assert summary["files"] == 5 and len(again) == 3 and set(again).isdisjoint(seen[:2])
    with h5py.File(out, "r") as a, h5py.File(straight, "r") as b:
        order = {p: i for i, p in enumerate(b["paths"][:])}
        rows = [order[p] for p in a["paths"][:]]
        np.testing.assert_allclose(a["embedding"][:], b["embedding"][:][rows], atol=1e-6)
        np.testing.assert_allclose(a["features"][:], b["features"][:][rows], atol=1e-6)
