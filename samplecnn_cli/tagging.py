"""Tag audio files with a trained run: decode, resample to the model's rate, segment, average, rank.

Decoding and resampling are samplecnn_cli.audio.decode (soundfile, soxr; ffmpeg fallback when present).
Folders are walked for audio files; a file that cannot be read becomes an entry with an "error"
and the others continue.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".au", ".aif", ".aiff", ".aifc", ".w64",
                  ".caf", ".m4a"}


def collect_files(paths) -> list[Path]:
    """Files given directly (whatever their suffix) and audio files found under given folders, sorted."""
    found: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
        else:
            found.append(path)  # a missing file is reported by tag_files
    return found


def tag_files(run_dir, paths, *, top_k: int = 5, batch_size: int = 64, device: str = "auto",
              precision: str = "auto") -> list[dict]:
    """One dict per file: path, top (label/score pairs, best first), scores (every label), segments,
    seconds; or path and error."""
    from samplecnn_cli import runs
    from samplecnn_cli.audio import AudioError, decode
    from samplecnn_cli.data.segments import segments_of
    from samplecnn_cli.errors import RunError, UsageError
    from samplecnn_cli.training.device import resolve_device, resolve_precision
    from samplecnn_cli.training.steps import predict_segments

    if top_k < 1:
        raise UsageError("--top-k must be at least 1")
    loaded = runs.load_run(Path(run_dir))
    if loaded.kind != "train":
        raise RunError(f"{run_dir} is a {loaded.kind} run; tag needs a waveform model trained by `samplecnn train`")
    torch_device = resolve_device(device)
    precision = resolve_precision(precision, torch_device)
    model = loaded.model.to(torch_device)
    rate = int(loaded.sample_rate or model.sample_rate)
    results = []
    for path in collect_files(paths):
        try:
            audio = decode(path, rate)
        except AudioError as exc:
            results.append({"path": str(path), "error": str(exc)})
            continue
        segments = segments_of(audio, model.input_samples)
        scores = predict_segments(model, segments, task=loaded.task, batch_size=batch_size, device=torch_device,
                                  precision=precision).mean(axis=0)
        order = np.argsort(-scores)[:top_k]
        results.append({
            "path": str(path), "seconds": round(audio.shape[0] / rate, 3), "segments": int(segments.shape[0]),
            "top": [{"label": loaded.label_names[i], "score": float(scores[i])} for i in order],
            "scores": {name: float(s) for name, s in zip(loaded.label_names, scores, strict=False)},
        })
    return results
