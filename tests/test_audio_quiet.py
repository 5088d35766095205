"""libmpg123's "Xing stream size" warning, written by C code to fd 2, does not reach the terminal."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests._audio_fixtures import write_audio

REPO = Path(__file__).resolve().parents[1]
XING = "Xing stream size"


def _mp3_with_wrong_xing_size(path: Path) -> Path:
    """An MP3 whose Xing header under-states the stream: trailing bytes, as in some real releases."""
    write_audio(path, seconds=3.0, sr=44100)
    path.write_bytes(path.read_bytes() + b"\0" * 5000)
    return path


def _stderr_of(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stderr


def test_decode_keeps_libmpg123_quiet_but_not_other_stderr(tmp_path):
    mp3 = _mp3_with_wrong_xing_size(tmp_path / "xing.mp3")
    # precondition: libsndfile alone prints the warning (else this test would prove nothing)
    assert XING in _stderr_of(f"import soundfile as sf; sf.SoundFile({str(mp3)!r}).close()")
    quiet = _stderr_of(f"""
import os
from samplecnn_cli.data import audio
x = audio.decode({str(mp3)!r}, 8000)
assert abs(x.shape[0] - 24000) < 2500, x.shape
with audio.quiet_libmpg123():
    with audio.quiet_libmpg123():  # nested (another thread's decode) shares the redirect
        os.write(2, b"a C library's real error\\n")
""")
    assert XING not in quiet
    assert "a C library's real error" in quiet
