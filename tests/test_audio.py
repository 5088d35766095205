import numpy as np
import pytest

from samplecnn_cli.data import audio
from tests._audio_fixtures import need_shared, tone, write_audio, write_corrupt


@pytest.mark.parametrize("suffix", [".wav", ".flac", ".ogg", ".mp3", ".au"])
def test_decode_formats_downmix_and_resample(tmp_path, suffix):
    path = write_audio(tmp_path / f"a{suffix}", seconds=1.0, sr=16000, freq=300, channels=2)
    x = audio.decode(path, 8000)
    assert x.dtype == np.float32 and x.ndim == 1
    # MP3 adds encoder delay/padding; the others are exact in length
    assert abs(x.shape[0] - 8000) <= (2500 if suffix == ".mp3" else 1)
    # the stereo channels are 1x and 2x the tone: the mono mean is 1.5 * 0.5 / 2 = 0.375 in amplitude
    core = x[1000:6000] if suffix != ".mp3" else x[3000:6000]
    assert 0.3 < np.abs(core).max() < 0.45


def test_decode_resampled_pitch_is_kept(tmp_path):
    path = write_audio(tmp_path / "a.wav", seconds=1.0, sr=44100, freq=1000)
    x = audio.decode(path, 8000)
    spectrum = np.abs(np.fft.rfft(x))
    assert abs(np.argmax(spectrum) * 8000 / x.shape[0] - 1000) < 2


def test_decode_max_seconds_reads_only_the_start(tmp_path):
    path = write_audio(tmp_path / "long.flac", seconds=5.0, sr=22050)
    x = audio.decode(path, 22050, max_seconds=1.5)
    assert x.shape[0] == int(1.5 * 22050)


def test_bad_files_raise_audio_error_with_reason(tmp_path):
    empty = tmp_path / "empty.mp3"
    empty.write_bytes(b"")
    with pytest.raises(audio.AudioError, match="empty"):
        audio.decode(empty, 8000)
    with pytest.raises(audio.AudioError, match="not found"):
        audio.decode(tmp_path / "missing.wav", 8000)
    with pytest.raises(audio.AudioError, match="libsndfile"):
        audio.decode(write_corrupt(tmp_path / "bad.wav"), 8000, use_ffmpeg=False)


def test_fit_length_and_int16():
    x = tone(0.5, 1000)
    assert audio.fit_length(x, 100).shape == (100,)
    padded = audio.fit_length(x, 800)
    assert padded.shape == (800,) and np.all(padded[500:] == 0)
    q = audio.to_int16(np.array([-1.5, -1.0, 0.0, 0.5, 1.0], np.float32))
    assert q.tolist() == [-32768, -32768, 0, 16384, 32767]


@pytest.mark.parametrize("rate", [0, 999, 8000.5, 500000])
def test_check_rate_rejects_bad_rates(rate):
    with pytest.raises(ValueError):
        audio.check_rate(rate)


@pytest.mark.parametrize("rate", [2000, 8000, 22050])
def test_check_rate_accepts_paper_rates(rate):
    assert audio.check_rate(rate) == rate


def test_decode_real_mtat_and_msd_mp3():
    folder = need_shared("music_examples", "audio")
    for mp3 in sorted(folder.glob("*.mp3")):
        x = audio.decode(mp3, 22050, max_seconds=29.1)
        assert 25 * 22050 < x.shape[0] <= int(round(29.1 * 22050))
        assert 0.01 < np.abs(x).max() <= 1.0


def test_ffmpeg_fallback_used_when_libsndfile_fails(tmp_path, monkeypatch):
    calls = []

    def fake_ffmpeg(path, max_seconds):
        calls.append(path)
        return 16000, iter([np.full((10000, 1), 0.25, np.float32), np.full((6000, 1), 0.25, np.float32)])

    monkeypatch.setattr(audio, "_ffmpeg_blocks", fake_ffmpeg)
    bad = write_corrupt(tmp_path / "odd.flac")
    x = audio.decode(bad, 8000, use_ffmpeg=True)
    assert calls == [bad] and abs(x.shape[0] - 8000) <= 1 and np.allclose(x[100:-100], 0.25, atol=1e-3)


def test_downmix_is_the_channel_mean():
    data = np.stack([np.ones(10), 3 * np.ones(10), np.zeros(10)], axis=1).astype(np.float32)
    assert np.allclose(audio.downmix(data), 4 / 3)
