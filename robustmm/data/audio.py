"""Frame-level audio features (log-mel filterbank or MFCC) from a folder of .wav files.

Backs ``robustmm data features audio --wav-dir DIR --out FILE.npz``. The output is a ``.npz`` of
plain arrays, readable with ``numpy.load(FILE, allow_pickle=False)`` (a pickle, as written before,
could run code when opened; nothing reads this file but the user's own code)::

    ids       str (N,)          clip ids (file name without ".wav"), in file-name order
    lengths   int64 (N,)        T of each clip
    features  float32 (sum T, F) every clip's frames, one after another in the order of ids
    config    str ()            JSON: format, kind, sample_rate, n_mels, n_mfcc, frame_ms, hop_ms,
                                n_fft, hop_length

:func:`read_audio_features` turns it back into ``{"features": {clip_id: (T, F) array},
"lengths": {clip_id: T}, "config": {...}}``, the dict :func:`compute_audio_features` returns.

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

import json
import math
import warnings
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from robustmm.errors import ConfigError, DataError

FeatureKind = Literal["logmel", "mfcc"]
LOG_EPS = 1e-6
#: ``config["format"]`` of a features file; a reader refuses any other
FEATURES_FORMAT = "robustmm-audio-features-1"


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
    """Compute features for every ``*.wav`` in ``wav_dir`` and write them to the ``.npz`` ``out_file``.

    Returns the features as :func:`read_audio_features` reads them back (see module docstring). The
    file is written to a hidden temporary file next to ``out_file`` and renamed, so a failed or
    interrupted write never leaves half a file (the temporary file is removed).
    """
    import torchaudio.functional as AF
    import torchaudio.transforms as AT

    from robustmm.io import write_atomic

    wav_dir, out_file = Path(wav_dir), Path(out_file)
    if out_file.suffix.lower() != ".npz":
        raise ConfigError(f"--out {out_file}: the features are written as a .npz file; name it e.g. "
                          f"{out_file.with_suffix('.npz')}")
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
    by_id: dict[str, list[str]] = {}
    for path in files:
        by_id.setdefault(path.stem, []).append(path.name)
    same = [names for names in by_id.values() if len(names) > 1]  # a.wav and a.WAV: one clip id
    if same:
        raise DataError(f"wav folder {wav_dir}: {same[0]} give the same clip id '{Path(same[0][0]).stem}'; rename "
                        "or remove one of them.")

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
        "config": {"format": FEATURES_FORMAT, "kind": kind, "sample_rate": sample_rate, "n_mels": n_mels,
                   "n_mfcc": n_mfcc if kind == "mfcc" else None, "frame_ms": frame_ms, "hop_ms": hop_ms,
                   "n_fft": win_length, "hop_length": hop_length},
    }
    ids = list(features)
    arrays = {"ids": np.asarray(ids, dtype=str),
              "lengths": np.asarray([result["lengths"][k] for k in ids], dtype=np.int64),
              "features": np.concatenate([features[k] for k in ids], axis=0),
              "config": np.asarray(json.dumps(result["config"]))}

    def write(tmp: str) -> None:
        with open(tmp, "wb") as fh:  # a file object: np.savez would append ".npz" to a name
            np.savez(fh, **arrays)

    write_atomic(out_file, write)
    return result


def read_audio_features(path: str | Path) -> dict:
    """The features written by :func:`compute_audio_features`, read without unpickling anything:
    ``{"features": {clip_id: float32 (T, F)}, "lengths": {clip_id: T}, "config": {...}}``."""
    path = Path(path)
    fix = "write it again with 'robustmm data features audio --wav-dir DIR --out FILE.npz'"
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in ("ids", "lengths", "features", "config")}
        config = json.loads(str(arrays["config"]))
    except Exception as exc:  # noqa: BLE001 - missing file, zip/np/JSON errors, a key absent
        raise DataError(f"audio features file {path} cannot be read ({type(exc).__name__}: {exc}); {fix}") from None
    ids, lengths, stacked = arrays["ids"], arrays["lengths"], arrays["features"]
    if not isinstance(config, dict) or config.get("format") != FEATURES_FORMAT:
        raise DataError(f"audio features file {path} is not a robustmm audio features file (no format "
                        f"'{FEATURES_FORMAT}' in its config); {fix}")
    if (ids.ndim != 1 or lengths.shape != ids.shape or stacked.ndim != 2 or lengths.dtype.kind not in "iu"
            or (lengths < 0).any() or int(lengths.sum()) != stacked.shape[0] or len(set(ids.tolist())) != len(ids)):
        raise DataError(f"audio features file {path}: its ids ({ids.shape}), lengths ({lengths.shape}) and "
                        f"features ({stacked.shape}) do not fit together (unique ids, one length per id, lengths "
                        f"summing to the feature rows); {fix}")
    parts = np.split(stacked, np.cumsum(lengths)[:-1]) if len(ids) else []
    return {"features": dict(zip(ids.tolist(), parts)),
            "lengths": {k: int(n) for k, n in zip(ids.tolist(), lengths)}, "config": config}
