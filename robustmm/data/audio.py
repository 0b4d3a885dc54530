"""Frame-level audio features (log-mel filterbank or MFCC) from a folder of .wav files.

Backs ``robustmm data features audio --wav-dir DIR --out FILE``. The output is a pickle::

    {"features": {clip_id: float32 array (T, F)},   # clip_id = file name without ".wav"
     "lengths":  {clip_id: int},                     # T of each clip
     "config":   {kind, sample_rate, n_mels, n_mfcc, frame_ms, hop_ms, n_fft, hop_length}}

Framing: window ``frame_ms`` (Hann), hop ``hop_ms``, centred frames (reflect padding), so a
clip of ``N`` samples (after resampling) has ``1 + N // hop_length`` frames, about
duration / hop. Log-mel = ln(mel power + 1e-6); MFCC = DCT-II of that log-mel
(``torchaudio.transforms.MFCC`` with ``log_mels=True``). Multi-channel audio is averaged to
mono first.

The options are checked before any clip is read: positive numbers, n_mfcc <= n_mels, and every
mel band must cover a frequency bin of the frame's FFT (torchaudio only warns; an empty band, from
too many bands or too low a sample rate, is a constant column).

Reading: ``torchaudio.load`` is tried first. From torchaudio 2.9 on it needs the separate
TorchCodec package; when that (or any other backend) is missing the file is read with
``soundfile`` if installed, else ``scipy.io.wavfile`` (PCM 8/16/32-bit and float WAV). On the
reference machine (torchaudio 2.11 without TorchCodec, no soundfile) scipy does the reading.
"""

from __future__ import annotations

import math
import os
import pickle
import warnings
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from robustmm.errors import ConfigError, DataError

FeatureKind = Literal["logmel", "mfcc"]
LOG_EPS = 1e-6


def _read_torchaudio(path: Path) -> tuple[torch.Tensor, int]:
    import torchaudio

    wav, sr = torchaudio.load(str(path))
    return wav.to(torch.float32), int(sr)


def _read_soundfile(path: Path) -> tuple[torch.Tensor, int]:
    import soundfile  # optional dependency

    data, sr = soundfile.read(str(path), dtype="float32", always_2d=True)  # (N, C)
    return torch.from_numpy(np.ascontiguousarray(data.T)), int(sr)


def _read_scipy(path: Path) -> tuple[torch.Tensor, int]:
    from scipy.io import wavfile

    sr, data = wavfile.read(str(path))
    data = np.asarray(data)
    if data.dtype == np.uint8:  # 8-bit PCM is unsigned, centred on 128
        x = (data.astype(np.float32) - 128.0) / 128.0
    elif data.dtype.kind == "i":
        x = data.astype(np.float32) / float(2 ** (8 * data.dtype.itemsize - 1))
    else:
        x = data.astype(np.float32)
    x = x[:, None] if x.ndim == 1 else x
    return torch.from_numpy(np.ascontiguousarray(x.T)), int(sr)


def read_wav(path: str | Path) -> tuple[torch.Tensor, int]:
    """Waveform (channels, samples) float32 in [-1, 1] and its sample rate.

    Tries torchaudio, soundfile, scipy in turn; raises DataError naming the file when none
    can read it.
    """
    path = Path(path)
    errors: list[str] = []
    for reader in (_read_torchaudio, _read_soundfile, _read_scipy):
        try:
            return reader(path)
        except ImportError as exc:  # backend not installed: not the file's fault
            errors.append(f"{reader.__name__[6:]}: not available ({exc})")
        except Exception as exc:  # noqa: BLE001 - each backend raises its own types
            errors.append(f"{reader.__name__[6:]}: {exc}")
    raise DataError(f"audio file {path} could not be read as WAV ({'; '.join(errors)}). "
                    "Check that it is a valid PCM or float WAV file, or re-export it (e.g. ffmpeg -i in -ac 1 out.wav).")


def _check_positive(integer: bool = True, **values: float) -> None:
    """Each named value must be a positive (integer when ``integer``) finite number."""
    for name, value in values.items():
        ok = isinstance(value, int) if integer else isinstance(value, (int, float)) and math.isfinite(value)
        if isinstance(value, bool) or not ok or value <= 0:
            what = "a positive integer" if integer else "a positive number"
            raise ConfigError(f"{name}={value!r} (--{name.replace('_', '-')}) must be {what}.")


def _empty_mel_bands(n_mels: int, n_fft: int, sample_rate: int) -> bool:
    """Whether a mel filter (as MelSpectrogram builds them) covers no FFT bin; torchaudio only
    warns about it, and such a band is a constant feature column."""
    import torchaudio.functional as AF

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the warning this check replaces with an error
        fb = AF.melscale_fbanks(n_fft // 2 + 1, 0.0, sample_rate / 2, n_mels, sample_rate)
    return bool((fb.max(dim=0).values == 0).any())


def _check_mel_bands(n_mels: int, n_fft: int, sample_rate: int, frame_ms: float) -> None:
    """Refuse mel bands without any frequency bin (too many bands for the frame's n_fft // 2 + 1 bins,
    or a sample rate too low), naming the largest --n-mels that fits."""
    # a bin lies inside at most two triangular filters: more bands than 2 * bins leave some empty
    # (and bound the search below, whatever --n-mels asks for)
    most = 2 * (n_fft // 2 + 1)
    if n_mels <= most and not _empty_mel_bands(n_mels, n_fft, sample_rate):
        return
    fits = next((k for k in range(min(n_mels - 1, most), 0, -1) if not _empty_mel_bands(k, n_fft, sample_rate)), 0)
    way = (f"use at most --n-mels {fits}, or raise --sample-rate or --frame-ms" if fits else
           "raise --sample-rate (16000 is usual for speech) or --frame-ms")
    raise ConfigError(f"n_mels={n_mels} (--n-mels) at --sample-rate {sample_rate} Hz with --frame-ms {frame_ms} "
                      f"(n_fft={n_fft}, {n_fft // 2 + 1} frequency bins): some mel bands would cover no frequency "
                      f"bin and give constant features; {way}.")


def compute_audio_features(
    wav_dir: str | Path,
    out_file: str | Path,
    kind: FeatureKind = "logmel",
    n_mels: int = 40,
    n_mfcc: int = 13,
    frame_ms: float = 25.0,
    hop_ms: float = 10.0,
    sample_rate: int = 16000,
) -> dict:
    """Compute features for every ``*.wav`` in ``wav_dir`` and write them to ``out_file``.

    Returns the dict that was written (see module docstring). The file is written to a
    temporary name next to ``out_file`` and renamed, so a crash never leaves half a file.
    """
    import torchaudio.functional as AF
    import torchaudio.transforms as AT

    wav_dir, out_file = Path(wav_dir), Path(out_file)
    if kind not in ("logmel", "mfcc"):
        raise ConfigError(f"audio feature kind {kind!r} is unknown: use 'logmel' or 'mfcc'.")
    _check_positive(n_mels=n_mels, sample_rate=sample_rate, **({"n_mfcc": n_mfcc} if kind == "mfcc" else {}))
    _check_positive(frame_ms=frame_ms, hop_ms=hop_ms, integer=False)
    if kind == "mfcc" and n_mfcc > n_mels:
        raise ConfigError(f"n_mfcc={n_mfcc} (--n-mfcc) is larger than n_mels={n_mels} (--n-mels): MFCCs are taken "
                          "from the mel bands; lower --n-mfcc or raise --n-mels.")
    win_length = int(round(sample_rate * frame_ms / 1000.0))
    hop_length = int(round(sample_rate * hop_ms / 1000.0))
    if win_length < 2 or hop_length < 1:
        raise ConfigError(f"frame_ms={frame_ms} (--frame-ms) / hop_ms={hop_ms} (--hop-ms) give fewer than 2 / 1 "
                          f"samples at {sample_rate} Hz (--sample-rate); raise them or the sample rate.")
    _check_mel_bands(n_mels, win_length, sample_rate, frame_ms)

    if not wav_dir.is_dir():
        raise DataError(f"wav folder {wav_dir} does not exist or is not a folder; pass --wav-dir with the .wav files.")
    files = sorted(p for p in wav_dir.iterdir() if p.is_file() and p.suffix.lower() == ".wav")
    if not files:
        raise DataError(f"wav folder {wav_dir} holds no .wav files; point --wav-dir at the folder with the clips.")

    mel_kwargs = dict(n_fft=win_length, win_length=win_length, hop_length=hop_length, n_mels=n_mels, center=True)
    if kind == "logmel":
        mel = AT.MelSpectrogram(sample_rate=sample_rate, **mel_kwargs)
        transform = lambda w: torch.log(mel(w) + LOG_EPS)  # noqa: E731
    else:
        transform = AT.MFCC(sample_rate=sample_rate, n_mfcc=n_mfcc, log_mels=True, melkwargs=mel_kwargs)

    features: dict[str, np.ndarray] = {}
    try:
        from tqdm import tqdm
        iterator = tqdm(files, desc=f"audio {kind}", unit="file", disable=None)
    except ImportError:
        iterator = files
    for path in iterator:
        wav, sr = read_wav(path)
        if wav.numel() == 0 or wav.shape[-1] == 0:
            raise DataError(f"audio file {path} has no samples; remove it or re-export the clip.")
        if not torch.isfinite(wav).all():
            raise DataError(f"audio file {path} holds NaN or infinite samples; re-export the clip.")
        wav = wav.mean(dim=0)
        if sr != sample_rate:
            wav = AF.resample(wav, sr, sample_rate)
        # reflect padding of centred frames needs more than n_fft // 2 samples
        if wav.shape[0] <= win_length // 2:
            wav = torch.nn.functional.pad(wav, (0, win_length // 2 + 1 - wav.shape[0]))
        with torch.no_grad():
            feats = transform(wav)  # (F, T)
        features[path.stem] = feats.T.contiguous().numpy().astype(np.float32)

    result = {
        "features": features,
        "lengths": {k: int(v.shape[0]) for k, v in features.items()},
        "config": {"kind": kind, "sample_rate": sample_rate, "n_mels": n_mels,
                   "n_mfcc": n_mfcc if kind == "mfcc" else None, "frame_ms": frame_ms, "hop_ms": hop_ms,
                   "n_fft": win_length, "hop_length": hop_length},
    }
    out_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_file.with_name(f"{out_file.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            pickle.dump(result, fh, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, out_file)
    finally:
        if tmp.exists():
            tmp.unlink()
    return result
