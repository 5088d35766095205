"""The decode step of the inference core (predictor.decoded_files), run in worker processes: imports no torch (cheap workers)."""

from __future__ import annotations

from pathlib import Path


def decode_file(path: str, sample_rate: int):
    """(path, mono float32 samples at `sample_rate`, None) or (path, None, reason)."""
    from samplecnn_cli.data.audio import AudioError, decode

    try:
        return path, decode(Path(path), sample_rate), None
    except AudioError as exc:
        return path, None, str(exc)
    except Exception as exc:  # one odd file must never stop a library run
        return path, None, f"{type(exc).__name__}: {exc}"
