"""Files of any length (issue 20, case 7): decode, resample and infer in pieces. Everything streamed
equals what the whole-file path gives (audio bit for bit, model outputs within 1e-4), and a stream
holds a few blocks, never the file. The memory goal itself (a 2-hour file within 1.1x of a 5-minute
one) is measured by benchmarks/bench_long_files.py.

The cut-offs are lowered here (audio.BLOCK_SECONDS, audio.STREAM_AFTER_SECONDS, STORE_PIECE) so that
seconds of audio take every streamed path.
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import soundfile as sf
import torch

from samplecnn_cli.core.runtime import Runtime
from samplecnn_cli.data import audio
from samplecnn_cli.data.store import Store
from samplecnn_cli.inference import predictor as core
from samplecnn_cli.inference.predictor import (
    Clip,
    Predictor,
    WindowCutter,
    array_clips,
    store_clips,
    windows_of,
)
from samplecnn_cli.inference.reducers import LayerPools
from samplecnn_cli.models.registry import create_model
from tests._store_fixtures import make_store

pytestmark = pytest.mark.usefixtures("inference_sandbox")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A stereo 44.1 kHz file in three formats, 7 s long."""
    folder = tmp_path_factory.mktemp("long")
    rng = np.random.default_rng(0)
    t = np.arange(7 * 44100) / 44100
    stereo = np.stack([0.3 * np.sin(2 * np.pi * 440 * t), 0.2 * np.sin(2 * np.pi * 660 * t)], axis=1)
    stereo = (stereo + 0.05 * rng.standard_normal(stereo.shape)).astype(np.float32)
    paths = {}
    for suffix, kwargs in ((".wav", {"subtype": "PCM_16"}), (".flac", {}),
                           (".mp3", {"format": "MP3", "subtype": "MPEG_LAYER_III"})):
        paths[suffix] = folder / f"mix{suffix}"
        sf.write(paths[suffix], stereo, 44100, **kwargs)
    return paths


@pytest.fixture
def short_cutoffs(monkeypatch):
    monkeypatch.setattr(audio, "BLOCK_SECONDS", 1)  # a 7 s file is 7 blocks
    monkeypatch.setattr(audio, "STREAM_AFTER_SECONDS", 2.0)  # and "long"


def model_of(seed: int = 0):
    torch.manual_seed(seed)
    return create_model("sample-3^3", num_outputs=3, sample_rate=8000).eval()


@pytest.mark.parametrize("seed", range(6))
def test_the_cutter_gives_exactly_the_windows_of_the_whole_clip(seed):
    rng = np.random.default_rng(seed)
    size, hop = int(rng.integers(5, 40)), int(rng.integers(1, 60))
    clip = rng.standard_normal(int(rng.integers(0, 400))).astype(np.float32)
    cutter, rows = WindowCutter(size, hop), []
    cuts = np.sort(rng.integers(0, len(clip) + 1, int(rng.integers(0, 8))))
    for piece in np.split(clip, cuts):
        rows += [row.copy() for row in cutter.feed(piece)]
    rows += list(cutter.finish())
    want = windows_of(clip, size, hop) if len(clip) else np.zeros((1, size), np.float32)
    assert cutter.length == len(clip) and cutter.windows == len(want) == len(rows)
    np.testing.assert_array_equal(np.stack(rows), want)


@pytest.mark.parametrize("suffix", [".wav", ".flac", ".mp3"])
@pytest.mark.parametrize("rate, seconds", [(22050, None), (8000, None), (16000, 2.9), (44100, None)])
def test_a_stream_is_the_decoded_file_bit_for_bit(files, short_cutoffs, suffix, rate, seconds):
    whole = audio.decode(files[suffix], rate, max_seconds=seconds)  # one block per read: BLOCK_SECONDS is 1 here
    pieces = list(audio.stream(files[suffix], rate, max_seconds=seconds))
    assert len(pieces) > 2
    np.testing.assert_array_equal(np.concatenate(pieces), whole)


def test_a_stream_holds_a_few_blocks_never_the_file(tmp_path, monkeypatch):
    monkeypatch.setattr(audio, "BLOCK_SECONDS", 2)
    path = tmp_path / "long.wav"
    with sf.SoundFile(path, "w", 44100, 2, subtype="PCM_16") as f:  # 3 minutes, written in pieces
        for _ in range(18):
            f.write(np.full((441000, 2), 0.1, np.float32))
    tracemalloc.start()
    try:
        total = sum(piece.shape[0] for piece in audio.stream(path, 22050))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert total == 180 * 22050
    whole = 180 * 44100 * 2 * 4  # the file as float32 stereo: what a whole decode reads first
    assert peak < whole / 10, f"peak {peak / 1e6:.1f} MB"


def test_pieces_give_the_predictor_the_same_results_as_the_whole_clip():
    predictor = Predictor.for_model(model_of(), Runtime.cpu(), task="multiclass", batch_size=5)
    rng = np.random.default_rng(3)
    clips = [rng.standard_normal(n).astype(np.float32) * 0.3 for n in (30, 81, 500, 2000)]
    reducers = ["scores", "window_scores", "embedding", "window_embeddings", LayerPools((-2, -1))]
    for hop in (None, 27, 100):
        whole = list(predictor.run(array_clips(clips), reducers, hop=hop))
        pieces = [Clip(i, None, pieces=np.array_split(c, 7)) for i, c in enumerate(clips)]
        streamed = list(predictor.run(pieces, reducers, hop=hop))
        for a, b in zip(whole, streamed, strict=True):
            assert (a.key, a.windows, a.short, a.seconds) == (b.key, b.windows, b.short, b.seconds)
            np.testing.assert_allclose(a.scores, b.scores, atol=1e-6)
            np.testing.assert_allclose(a.window_embeddings, b.window_embeddings, atol=1e-5)
            np.testing.assert_allclose(a.features[-1]["max"], b.features[-1]["max"], atol=1e-5)


def test_a_file_that_breaks_half_way_is_reported_and_the_others_continue():
    predictor = Predictor.for_model(model_of(), Runtime.cpu(), task="multiclass", batch_size=4)

    def breaking():
        yield np.zeros(300, np.float32)
        raise core.ClipError("unreadable by libsndfile after the start: broken frame")

    clips = [Clip("a", np.ones(200, np.float32) * 0.1), Clip("bad", None, pieces=breaking()),
             Clip("c", np.ones(90, np.float32) * 0.1)]
    results = list(predictor.run(clips))
    assert [(r.key, r.error is None) for r in results] == [("a", True), ("bad", False), ("c", True)]
    assert "broken frame" in results[1].error and results[1].scores is None


def test_long_store_clips_are_read_in_pieces(tmp_path, monkeypatch):
    split = Store(make_store(tmp_path / "s", task="multiclass", clips=(2, 2, 3), seconds=0.2)).split("test")
    predictor = Predictor.for_model(model_of(), Runtime.cpu(), task="multiclass", batch_size=4)
    whole = list(predictor.run(store_clips(split), ["scores", "loss"]))
    monkeypatch.setattr(core, "STORE_PIECE", 37)
    streamed = list(predictor.run(store_clips(split), ["scores", "loss"]))
    for a, b in zip(whole, streamed, strict=True):
        np.testing.assert_allclose(a.scores, b.scores, atol=1e-6)
        assert a.loss == pytest.approx(b.loss, abs=1e-6)


def test_tag_streams_long_files_with_the_same_scores(files, short_cutoffs, tmp_path):
    from samplecnn_cli.inference.decode import decode_file, file_clip
    from samplecnn_cli.inference.library import LibraryModel, tag_files

    assert decode_file(str(files[".flac"]), 8000)[3] is True  # a worker leaves a long file to the consumer
    assert file_clip(str(files[".flac"]), 8000).pieces is not None
    predictor = Predictor.for_model(model_of(), Runtime.cpu(), task="multiclass", batch_size=8)
    predictor.sample_rate, predictor.label_names = 8000, ["a", "b", "c"]
    loaded = type("Loaded", (), {"label_names": ["a", "b", "c"]})()
    model = LibraryModel(loaded, predictor, "torch")
    streamed = tag_files(model, list(files.values()), timeline=True, hop=0.05, workers=0)
    audio.STREAM_AFTER_SECONDS = 1e9  # (restored by the fixture) now decoded whole
    whole = tag_files(model, list(files.values()), timeline=True, hop=0.05, workers=0)
    for a, b in zip(streamed, whole, strict=True):
        assert a["segments"] == b["segments"] and a["seconds"] == b["seconds"]
        np.testing.assert_allclose(list(a["scores"].values()), list(b["scores"].values()), atol=1e-4)
        np.testing.assert_allclose(a["timeline"], b["timeline"], atol=1e-4)


def test_preprocess_streams_long_clips_into_the_same_store(files, tmp_path, monkeypatch):
    from samplecnn_cli.data import preprocess
    from samplecnn_cli.data.datasets import get_adapter

    root = tmp_path / "data"
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    for i, path in enumerate(files.values()):
        (root / "ab"[i % 2] / f"{i}{path.suffix}").write_bytes(path.read_bytes())
        (root / "ab"[(i + 1) % 2] / f"copy{i}{path.suffix}").write_bytes(path.read_bytes())
    manifest = get_adapter("folder").load(root, {})
    settings = preprocess.Settings(sample_rate=8000, workers=1)
    preprocess.run(manifest, tmp_path / "whole", settings)
    monkeypatch.setattr(audio, "BLOCK_SECONDS", 1)
    monkeypatch.setattr(audio, "STREAM_AFTER_SECONDS", 2.0)
    monkeypatch.setattr(preprocess, "FLUSH_SAMPLES", 5000)
    preprocess.run(get_adapter("folder").load(root, {}), tmp_path / "streamed", settings)
    for split in Store(tmp_path / "whole"):
        other = Store(tmp_path / "streamed").split(split.split)
        assert other.clip_ids == split.clip_ids and np.array_equal(other.offsets, split.offsets)
        for i in range(len(split)):
            np.testing.assert_array_equal(other.read(i), split.read(i))
