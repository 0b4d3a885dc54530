"""Log-mel / MFCC features from generated sine-wave WAV files."""

from __future__ import annotations

import math
import pickle
import signal
import wave
from pathlib import Path

import numpy as np
import pytest

from robustmm.data.audio import compute_audio_features, read_audio_features, read_wav
from robustmm.errors import ConfigError, DataError


def write_sine(path: Path, seconds: float, freq: float, amplitude: float, rate: int = 16000,
               channels: int = 1) -> None:
    """16-bit PCM sine written with the stdlib wave module."""
    t = np.arange(int(round(seconds * rate))) / rate
    x = np.round(amplitude * 32767 * np.sin(2 * np.pi * freq * t)).astype("<i2")
    if channels > 1:
        x = np.repeat(x[:, None], channels, axis=1)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(x.tobytes())


@pytest.fixture(scope="module")
def wav_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("wavs")
    write_sine(d / "quiet.wav", 1.0, 1000.0, 0.1)
    write_sine(d / "loud.wav", 1.0, 1000.0, 0.5)
    write_sine(d / "high.wav", 0.5, 3000.0, 0.3)
    write_sine(d / "low_rate.wav", 0.5, 1000.0, 0.3, rate=8000)  # resampled to 16 kHz
    write_sine(d / "stereo.wav", 0.3, 1000.0, 0.3, channels=2)
    (d / "notes.txt").write_text("not audio")  # ignored
    return d


def test_read_wav_scales_pcm(wav_dir: Path) -> None:
    wav, sr = read_wav(wav_dir / "loud.wav")
    assert sr == 16000 and wav.shape == (1, 16000)
    assert float(wav.abs().max()) == pytest.approx(0.5, abs=1e-3)


def test_logmel_frames_loudness_and_pitch(wav_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "feats" / "audio.npz"
    result = compute_audio_features(wav_dir, out, kind="logmel", n_mels=40)
    stored = read_audio_features(out)
    assert sorted(stored["features"]) == ["high", "loud", "low_rate", "quiet", "stereo"]
    assert stored["lengths"] == result["lengths"]
    assert stored["config"]["n_fft"] == 400 and stored["config"]["hop_length"] == 160
    assert [p.name for p in out.parent.iterdir()] == ["audio.npz"]  # no temporary file left

    f = stored["features"]
    for clip, seconds in (("quiet", 1.0), ("loud", 1.0), ("high", 0.5), ("low_rate", 0.5), ("stereo", 0.3)):
        assert f[clip].dtype == np.float32 and f[clip].shape[1] == 40
        # centred frames: 1 + samples // hop, i.e. duration / 10 ms (+1)
        assert abs(f[clip].shape[0] - seconds / 0.010) <= 2, (clip, f[clip].shape)
        assert stored["lengths"][clip] == f[clip].shape[0]
    assert f["quiet"].shape[0] == 1 + 16000 // 160

    # 5x the amplitude is 25x the power: ln(25) = 3.22 more log-mel at the tone's band
    band = int(f["loud"].mean(0).argmax())
    inner = slice(5, -5)  # skip edge frames that see the padding
    diff = float(f["loud"][inner, band].mean() - f["quiet"][inner, band].mean())
    assert diff == pytest.approx(math.log(25.0), abs=0.05)
    assert f["loud"].mean() > f["quiet"].mean()
    # a higher tone peaks in a higher mel band
    assert int(f["high"].mean(0).argmax()) > band
    # the 8 kHz clip of the same tone peaks in the same band after resampling
    assert int(f["low_rate"].mean(0).argmax()) == band


def test_mfcc_shape(wav_dir: Path, tmp_path: Path) -> None:
    result = compute_audio_features(wav_dir, tmp_path / "mfcc.npz", kind="mfcc", n_mels=40, n_mfcc=13)
    assert result["features"]["loud"].shape == (101, 13)
    # c0 follows overall log energy
    assert result["features"]["loud"][:, 0].mean() > result["features"]["quiet"][:, 0].mean()


def test_errors(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="no .wav files"):
        compute_audio_features(empty, tmp_path / "x.npz")
    with pytest.raises(DataError, match="does not exist"):
        compute_audio_features(tmp_path / "missing", tmp_path / "x.npz")

    broken = tmp_path / "broken"
    broken.mkdir()
    write_sine(broken / "good.wav", 0.2, 440.0, 0.3)
    (broken / "bad.wav").write_bytes(b"RIFF....garbage, not a wav file")
    with pytest.raises(DataError) as info:
        compute_audio_features(broken, tmp_path / "x.npz")
    assert "bad.wav" in str(info.value)
    assert not (tmp_path / "x.npz").exists()

    with pytest.raises(ConfigError):
        compute_audio_features(broken, tmp_path / "x.npz", kind="spectrogram")  # type: ignore[arg-type]



@pytest.mark.parametrize("kwargs, message", [
    (dict(n_mels=0), r"n_mels=0 \(--n-mels\) must be a positive integer"),  # wrote 0 columns
    (dict(n_mels=-3), r"n_mels=-3 \(--n-mels\) must be a positive integer"),  # RuntimeError traceback
    (dict(sample_rate=0), r"--sample-rate\) must be a positive integer"),
    (dict(kind="mfcc", n_mfcc=0), r"--n-mfcc\) must be a positive integer"),
    (dict(frame_ms=float("nan")), r"--frame-ms\) must be a positive number"),
    (dict(hop_ms=-10.0), r"--hop-ms\) must be a positive number"),
    # 100 Hz: a 2-sample frame has 2 frequency bins and every mel band is empty (constant features)
    (dict(sample_rate=100), r"no frequency bin.*raise --sample-rate"),
    # 16 kHz, 25 ms: 201 bins; 128 bands leave some empty (torchaudio only warns), 89 is the most that fit
    (dict(n_mels=128), r"no frequency bin.*at most --n-mels 89"),
    (dict(n_mels=10 ** 9), r"at most --n-mels 89"),  # bounded search, no huge filterbank
])
def test_numeric_options_are_checked_before_anything_is_written(wav_dir: Path, tmp_path: Path, kwargs: dict,
                                                                 message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        compute_audio_features(wav_dir, tmp_path / "x.npz", **kwargs)
    assert not (tmp_path / "x.npz").exists()


def test_most_mel_bands_that_fit_are_accepted(wav_dir: Path, tmp_path: Path) -> None:
    result = compute_audio_features(wav_dir, tmp_path / "x.npz", n_mels=89)
    assert result["features"]["loud"].shape == (101, 89)
    assert (result["features"]["loud"].std(axis=0) > 0).all()  # no constant band

def test_cli_features_audio(wav_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from robustmm.cli import main

    out = tmp_path / "cli" / "mfcc.npz"
    assert main(["data", "features", "audio", "--wav-dir", str(wav_dir), "--out", str(out), "--kind", "mfcc",
                 "--n-mfcc", "13"]) == 0
    stored = read_audio_features(out)
    assert stored["config"]["kind"] == "mfcc" and stored["features"]["loud"].shape == (101, 13)
    assert "5 clips" in capsys.readouterr().out
    # an existing output is never overwritten; a bad folder is a user error (exit status 2)
    assert main(["data", "features", "audio", "--wav-dir", str(wav_dir), "--out", str(out)]) == 2
    assert main(["data", "features", "audio", "--wav-dir", str(tmp_path / "nope"), "--out",
                 str(tmp_path / "y.npz")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["data", "features", "audio", "--wav-dir", str(wav_dir), "--out", str(tmp_path / "z.npz"),
                 "--n-mels", "-3"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("robustmm: error: n_mels=-3 (--n-mels)") and "Traceback" not in err
    assert not (tmp_path / "z.npz").exists()


def test_features_are_plain_arrays_read_without_unpickling(wav_dir: Path, tmp_path: Path) -> None:
    """The output was a pickle, which opening could run code from (and which robustmm refuses to open
    elsewhere). Now it is a .npz that numpy reads with allow_pickle=False."""
    out = tmp_path / "audio.npz"
    result = compute_audio_features(wav_dir, out, n_mels=20)
    with np.load(out, allow_pickle=False) as archive:
        assert sorted(archive.files) == ["config", "features", "ids", "lengths"]
        ids, lengths, stacked = archive["ids"].tolist(), archive["lengths"], archive["features"]
    assert ids == ["high", "loud", "low_rate", "quiet", "stereo"] and stacked.shape == (lengths.sum(), 20)
    start = int(lengths[: ids.index("loud")].sum())
    np.testing.assert_array_equal(stacked[start:start + lengths[ids.index("loud")]], result["features"]["loud"])
    stored = read_audio_features(out)
    assert stored["lengths"] == result["lengths"] and stored["config"] == result["config"]
    for clip, frames in result["features"].items():
        np.testing.assert_array_equal(stored["features"][clip], frames)

    with pytest.raises(ConfigError, match=r"\.npz file; name it e\.g\. .*x\.npz"):
        compute_audio_features(wav_dir, tmp_path / "x.pkl")  # checked before any clip is read
    assert sorted(p.name for p in tmp_path.iterdir()) == ["audio.npz"]
    pickled = tmp_path / "old.npz"
    with open(pickled, "wb") as fh:
        pickle.dump(result, fh)
    with pytest.raises(DataError, match=r"audio features file .*old\.npz cannot be read"):
        read_audio_features(pickled)


def test_two_files_of_one_clip_id_are_refused(tmp_path: Path) -> None:
    """a.wav and a.WAV are both clip 'a': the second silently replaced the first."""
    folder = tmp_path / "wavs"
    folder.mkdir()
    write_sine(folder / "a.wav", 0.2, 440.0, 0.3)
    write_sine(folder / "a.WAV", 0.2, 880.0, 0.3)
    with pytest.raises(DataError, match=r"\['a\.WAV', 'a\.wav'\] give the same clip id 'a'"):
        compute_audio_features(folder, tmp_path / "x.npz")
    assert not (tmp_path / "x.npz").exists()


def test_a_killed_write_leaves_no_temporary_file(wav_dir: Path, tmp_path: Path, monkeypatch,
                                                 capsys: pytest.CaptureFixture) -> None:
    """FILE.tmp<pid> stayed next to --out when the command was killed (SIGTERM) while writing."""
    from robustmm.cli import main

    def killed(fh, **arrays):
        fh.write(b"half a file")
        signal.raise_signal(signal.SIGTERM)

    monkeypatch.setattr(np, "savez", killed)
    out = tmp_path / "out" / "audio.npz"
    handler = signal.getsignal(signal.SIGTERM)
    assert main(["data", "features", "audio", "--wav-dir", str(wav_dir), "--out", str(out)]) != 0
    assert "interrupted" in capsys.readouterr().err
    assert list(out.parent.iterdir()) == []
    assert signal.getsignal(signal.SIGTERM) == handler  # the command's own handler is gone again
