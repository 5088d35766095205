"""The decode step of the inference core (predictor.decoded_files). `decode_file` runs in worker
processes and imports no torch (cheap workers); a file longer than audio.STREAM_AFTER_SECONDS is left
to `file_clip`, which streams it in pieces in the consumer's process (memory flat in its length)."""

from __future__ import annotations

from pathlib import Path


def decode_file(path: str, sample_rate: int):
    """(path, mono float32 samples at `sample_rate`, None, False), (path, None, reason, False), or
    (path, None, None, True) for a long file to stream instead."""
    from samplecnn_cli.data.audio import AudioError, decode, is_long

    try:
        if is_long(path):
            return path, None, None, True
        return path, decode(Path(path), sample_rate), None, False
    except AudioError as exc:
        return path, None, str(exc), False
    except Exception as exc:  # one odd file must never stop a library run
        return path, None, f"{type(exc).__name__}: {exc}", False


def file_clip(path: str, sample_rate: int):
    """The predictor's Clip of one file decoded in this process: whole, or streamed when it is long."""
    from samplecnn_cli.data.audio import is_long
    from samplecnn_cli.inference.predictor import Clip

    try:
        long = is_long(path)
    except Exception:  # decided by decode_file's own error below
        long = False
    if not long:
        _, audio, error, _ = decode_file(path, sample_rate)
        return Clip(path, audio, error)
    return Clip(path, None, pieces=_pieces(path, sample_rate))


def _pieces(path: str, sample_rate: int):
    from samplecnn_cli.data.audio import AudioError, stream
    from samplecnn_cli.inference.predictor import ClipError

    try:
        yield from stream(Path(path), sample_rate)
    except AudioError as exc:
        raise ClipError(str(exc)) from None
    except Exception as exc:  # one odd file must never stop a library run
        raise ClipError(f"{type(exc).__name__}: {exc}") from None
