"""A tiny synthetic store for tests: a few clips per split, learnable (each label is a tone).

    from tests._store_fixtures import make_store
    store_dir = make_store(tmp_path / "store", task="multiclass")

Label k is a sine at its own frequency; a clip holds the tones of its labels plus a little noise, so
even a tiny model separates the labels within an epoch or two.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from samplecnn_cli.data.store import SplitWriter


def make_store(directory, *, task: str = "multilabel", sample_rate: int = 8000,
               clips: tuple[int, int, int] = (12, 4, 4), seconds: float = 1.0, num_labels: int = 3,
               seed: int = 0) -> Path:
    """Write train/valid/test.h5 into `directory` and return it."""
    directory = Path(directory)
    rng = np.random.default_rng(seed)
    label_names = [f"tone{k}" for k in range(num_labels)]
    # frequencies well apart and below Nyquist, whatever the rate
    freqs = [sample_rate * (k + 1) / (2.5 * (num_labels + 1)) for k in range(num_labels)]
    length = int(round(seconds * sample_rate))
    t = np.arange(length) / sample_rate
    for split, count in zip(("train", "valid", "test"), clips, strict=False):
        with SplitWriter(directory / f"{split}.h5", sample_rate=sample_rate, label_names=label_names,
                         task=task, dataset="synthetic", split=split) as writer:
            for i in range(count):
                labels = np.zeros(num_labels, bool)
                if task == "multiclass":
                    labels[i % num_labels] = True
                else:
                    labels[i % num_labels] = True  # every label occurs, positives and negatives
                    labels |= rng.random(num_labels) < 0.3
                    if labels.all() and num_labels > 1:
                        labels[(i + 1) % num_labels] = False
                wave = 0.02 * rng.standard_normal(length)
                for k in np.flatnonzero(labels):
                    wave += 0.3 * np.sin(2 * np.pi * freqs[k] * t + rng.uniform(0, 2 * np.pi))
                audio = np.clip(np.round(wave * 32767), -32768, 32767).astype(np.int16)
                writer.append(f"{split}-{i:03d}", f"{split}/{i:03d}.wav", audio, labels)
    return directory


TINY_MODEL = "sample-3^3"  # 81-sample input: a few milliseconds per step


def train_tiny_run(directory, *, task: str = "multiclass", epochs: int = 2, seed: int = 0, **options) -> Path:
    """A trained run of TINY_MODEL on make_store data (fp32, CPU, the paper's recipe unless `recipe` is
    given), in `directory`/run."""
    from samplecnn_cli.training.trainer import train

    directory = Path(directory)
    store = make_store(directory / "store", task=task, seconds=0.1, seed=seed)
    options = {"precision": "fp32", "device": "cpu", "seed": seed, "recipe": "paper", **options}
    return train(model=TINY_MODEL, data=store, out=directory / "run", epochs=epochs, **options)


def segments_of(audio: np.ndarray, input_samples: int) -> np.ndarray:
    """The tests' own reference cut: a 1-D waveform as (segments, input_samples), a short one zero-padded."""
    if audio.shape[0] < input_samples:
        audio = np.pad(audio, (0, input_samples - audio.shape[0]))
    count = audio.shape[0] // input_samples
    return np.ascontiguousarray(audio[: count * input_samples].reshape(count, input_samples))
