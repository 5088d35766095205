"""The model card written beside an exported model: NAME.json (in the style of Essentia's model cards:
name, version, classes, sample rate, input length, inputs/outputs schema, dataset and metrics, how to
run) and NAME.md, the same for people, with a runnable onnxruntime example."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

CARD_VERSION = "1"

# The deployment example of docs/inference.md with this model's file name filled in (the suite runs the
# docs' copy and checks that this one is the same code).
DEPLOY_EXAMPLE = '''import json, sys
import numpy as np, onnxruntime as ort, soundfile as sf, soxr

session = ort.InferenceSession("{model_file}")
meta = session.get_modelmeta().custom_metadata_map
rate, size, labels = int(meta["sample_rate"]), int(meta["input_samples"]), json.loads(meta["labels"])
audio, sr = sf.read(sys.argv[1], dtype="float32", always_2d=True)
audio = audio.mean(axis=1)  # mono
if sr != rate:
    audio = soxr.resample(audio, sr, rate, quality=meta["resampler_quality"])
audio = np.pad(audio, (0, max(0, size - len(audio))))  # a short clip: one zero-padded window
windows = audio[: len(audio) // size * size].reshape(-1, size)  # non-overlapping, as `samplecnn tag`
scores = session.run(["scores"], {{"audio": windows}})[0].mean(axis=0)
for i in np.argsort(-scores)[:5]:
    print(f"{{labels[i]}} {{scores[i]:.3f}}")
'''


def card_paths(model_file: Path) -> tuple[Path, Path]:
    model_file = Path(model_file)
    return model_file.with_suffix(".json"), model_file.with_suffix(".md")


def model_card(model_file: Path, fmt: str, meta: dict, shapes: dict[str, list]) -> dict:
    """The card's content: `meta` (export.metadata) and the outputs' shapes (name -> shape, batch first)."""
    import torch

    labels = json.loads(meta["labels"])
    rate, samples = int(meta["sample_rate"]), int(meta["input_samples"])
    data = json.loads(meta["training_data"])
    if "metrics" in meta:
        data["metrics"] = json.loads(meta["metrics"])
    kind = "multi-label" if meta["task"] == "multilabel" else "single-label"
    return {
        "name": Path(model_file).stem, "type": f"{kind} audio classifier", "version": CARD_VERSION,
        "description": f"{meta['model']} (SampleCNN family, raw waveform) trained with samplecnn on "
                       f"{data.get('dataset', 'a preprocessed store')}: {len(labels)} {kind} classes",
        "model_file": Path(model_file).name, "framework": fmt,
        "framework_version": f"opset 17, torch {torch.__version__}" if fmt == "onnx" else f"torch {torch.__version__}",
        "release_date": date.today().isoformat(), "samplecnn_version": meta["samplecnn_version"],
        "model": meta["model"], "classes": labels, "sample_rate": rate,
        "input_length": {"samples": samples, "seconds": round(samples / rate, 6)},
        "schema": _schema(meta, shapes), "dataset": data,
        "inference": {"sample_rate": rate, "downmix": "mean of the channels", "resampler": meta["resampler"],
                      "resampler_quality": meta["resampler_quality"], "hop_samples": int(meta["hop_samples"]),
                      "aggregation": meta["hop"], "scores": meta["scores"]},
        "how_to_run": {"samplecnn": "samplecnn tag RUN_DIR song.wav (the run this file was exported from)",
                       "onnxruntime": "NAME.md beside this file, or docs/inference.md: decode with soundfile, "
                                      "resample with soxr, run 'scores' on non-overlapping windows, average"},
    }


def _schema(meta: dict, shapes: dict[str, list]) -> dict:
    purpose = {"scores": ("predictions", f"{meta['scores']} of the logits: the probabilities `samplecnn tag` "
                                         "reports (one window)"),
               "logits": ("", "the last dense layer, before the activation"),
               "embedding": ("embeddings", "the penultimate 512-d layer averaged over time (as `samplecnn embed`)")}
    outputs = []
    for name in json.loads(meta["outputs"]):
        role, about = purpose.get(name, ("features", "a hidden layer (channels, time): multi-level features"))
        outputs.append({"name": name, "type": "float32", "shape": ["batch", *shapes[name][1:]],
                        "output_purpose": role, "description": about})
    return {"inputs": [{"name": "audio", "type": "float32", "shape": ["batch", int(meta["input_samples"])],
                        "description": meta["input"]}],
            "outputs": outputs}


def card_markdown(card: dict) -> str:
    """NAME.md: what a person deploying the file wants to know, and the example to run."""
    data, metrics = card["dataset"], card["dataset"].get("metrics") or {}
    shown = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if isinstance(v, float))
    lines = [f"# {card['name']}", "", card["description"] + ".", "",
             f"- File: `{card['model_file']}` ({card['framework']}, {card['framework_version']}), "
             f"samplecnn {card['samplecnn_version']}",
             f"- Input: `audio`, float32 (batch, {card['input_length']['samples']}) = "
             f"{card['input_length']['seconds']:g} s at {card['sample_rate']} Hz, mono, in [-1, 1]; "
             f"resample with {card['inference']['resampler']} at quality {card['inference']['resampler_quality']}",
             "- Outputs: " + "; ".join(f"`{o['name']}` ({', '.join(map(str, o['shape']))})"
                                       for o in card["schema"]["outputs"]),
             f"- Classes ({len(card['classes'])}): " + ", ".join(card["classes"]),
             "- Training data: " + _data_line(data),
             f"- Test metrics: {shown} ({metrics.get('clips')} clips)" if shown else
             "- Test metrics: none recorded (run `samplecnn evaluate RUN_DIR` before exporting)",
             "", "## How to run", "",
             f"How a file is scored: {card['inference']['aggregation']}. The same with onnxruntime, soundfile "
             "and soxr (`python run.py song.wav`):", ""]
    if card["framework"] == "onnx":
        lines += ["```python", DEPLOY_EXAMPLE.format(model_file=card["model_file"]).rstrip(), "```", ""]
    else:
        lines += [f"TorchScript: `torch.jit.load('{card['model_file']}')(audio)` returns the outputs above "
                  "in that order.", ""]
    return "\n".join(lines)


def _data_line(data: dict) -> str:
    if not data.get("store"):
        return "not recorded in the run's config"
    clips = data.get("clips")
    counts = f", {sum(clips.values())} clips (" + ", ".join(f"{k} {v}" for k, v in clips.items()) + ")" if clips else ""
    return (f"{data.get('dataset', 'a store')} at {data['store']}{counts}; trained on "
            f"{' + '.join(data.get('train_splits', ['train']))}")


def write_card(model_file: Path, fmt: str, meta: dict, shapes: dict[str, list]) -> tuple[Path, Path]:
    """NAME.json and NAME.md beside `model_file` (each written whole: temporary name, then renamed)."""
    from samplecnn_cli.runs.folder import atomic_write_text, write_json

    card = model_card(model_file, fmt, meta, shapes)
    json_path, md_path = card_paths(model_file)
    write_json(json_path, card)
    atomic_write_text(md_path, card_markdown(card))
    return json_path, md_path
