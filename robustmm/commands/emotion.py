"""Emotion / sentiment data commands:

- ``robustmm data synth mmsa --out FILE``: a synthetic CMU-MOSI/MOSEI-style pickle in the MMSA
  layout (planted signal in text, audio and vision; label-correlated bias words);
- ``robustmm data features audio --wav-dir DIR --out FILE.npz``: log-mel or MFCC frame sequences
  from a folder of .wav files, to build the audio stream from recordings (a ``.npz`` of plain
  arrays, see ``robustmm.data.audio``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from robustmm.commands import data_group, sigterm_interrupts
from robustmm.errors import ConfigError, RobustMMError


# data.synthetic key -> the option of ``robustmm data synth mmsa`` that sets it
SYNTH_FLAGS = {"n_train": "--n-train", "n_valid": "--n-valid", "n_test": "--n-test", "aligned": "--unaligned",
               "seq_len": "--seq-len", "audio_len": "--audio-len", "vision_len": "--vision-len", "dims": "--dims",
               "seed": "--seed", "bias_strength_train": "--bias-train", "bias_strength_test": "--bias-test"}
DIMS = ("TEXT", "AUDIO", "VISION")


def _synth_options(args: argparse.Namespace):
    """The arguments checked by the model a study's ``data.synthetic`` goes through, so the command
    never writes a file a study would refuse (e.g. --n-train 0, a feature size of 0)."""
    from pydantic import ValidationError

    from robustmm.data.mmsa import MMSASynthOptions

    given = dict(n_train=args.n_train, n_valid=args.n_valid, n_test=args.n_test, aligned=not args.unaligned,
                 seq_len=args.seq_len, audio_len=args.audio_len, vision_len=args.vision_len, dims=args.dims,
                 seed=args.seed, bias_strength_train=args.bias_train, bias_strength_test=args.bias_test)
    try:
        return MMSASynthOptions(**given)
    except ValidationError as err:
        problems = []
        for e in err.errors():
            key, *rest = e["loc"] or ("",)
            where = SYNTH_FLAGS.get(str(key), str(key))
            if key == "dims" and rest and isinstance(rest[0], int):
                where += f" {DIMS[rest[0]]}"
            problems.append(f"{where} ({key}): {e['msg']}")
        raise ConfigError(f"robustmm data synth mmsa: {'; '.join(problems)}") from None


def cmd_synth_mmsa(args: argparse.Namespace) -> int:
    from robustmm.data.synth.mmsa import write_synthetic_mmsa

    out = Path(args.out)
    if out.exists():
        raise RobustMMError(f"--out {out} exists; choose a new file name (nothing is overwritten)")
    if out.suffix.lower() not in (".pkl", ".pickle"):
        raise RobustMMError(f"--out {out} should name a .pkl file, e.g. {out / 'aligned_50.pkl'}")
    options = _synth_options(args)
    try:
        write_synthetic_mmsa(out, **options.model_dump())
    except ValueError as exc:
        raise RobustMMError(f"robustmm data synth mmsa: {exc}") from None
    layout = "unaligned" if args.unaligned else "aligned"
    print(f"wrote a synthetic {layout} MMSA file ({args.n_train}/{args.n_valid}/{args.n_test} train/valid/test) "
          f"to {out} (see {out.parent / (out.stem + '.README.md')})")
    return 0


def cmd_features_audio(args: argparse.Namespace) -> int:
    from robustmm.data.audio import compute_audio_features

    out = Path(args.out)
    if out.exists():
        raise RobustMMError(f"--out {out} exists; choose a new file name (nothing is overwritten)")
    with sigterm_interrupts():  # a kill (SIGTERM) unwinds too, so the temporary file is removed
        result = compute_audio_features(args.wav_dir, out, kind=args.kind, n_mels=args.n_mels, n_mfcc=args.n_mfcc,
                                        frame_ms=args.frame_ms, hop_ms=args.hop_ms, sample_rate=args.sample_rate)
    lengths = list(result["lengths"].values())
    dim = next(iter(result["features"].values())).shape[1]
    print(f"wrote {args.kind} features of {len(lengths)} clips ({dim} per frame, {min(lengths)}-{max(lengths)} "
          f"frames) to {out}")
    return 0


def register(sub, data, synth) -> None:
    mmsa = synth.add_parser("mmsa", help="MMSA layout (CMU-MOSI/MOSEI feature pickle) with planted signal")
    mmsa.add_argument("--out", required=True, help="pickle file to create, e.g. datasets/mosi/aligned_50.pkl")
    # the bounds are those of the study's data.synthetic (robustmm.data.mmsa.MMSASynthOptions), checked there
    mmsa.add_argument("--n-train", type=int, default=300, help="training utterances, at least 10")
    mmsa.add_argument("--n-valid", type=int, default=80, help="validation utterances, at least 5")
    mmsa.add_argument("--n-test", type=int, default=200, help="test utterances, at least 5")
    mmsa.add_argument("--unaligned", action="store_true",
                      help="audio/vision with their own lengths (audio_lengths/vision_lengths keys)")
    mmsa.add_argument("--seq-len", type=int, default=50, help="padded text length, at least 3")
    mmsa.add_argument("--audio-len", type=int, help="padded audio length (unaligned; default 375)")
    mmsa.add_argument("--vision-len", type=int, help="padded vision length (unaligned; default 500)")
    mmsa.add_argument("--dims", type=int, nargs=3, default=[768, 5, 20], metavar=("TEXT", "AUDIO", "VISION"),
                      help="feature sizes (MOSI: 768 5 20, MOSEI: 768 74 35)")
    mmsa.add_argument("--seed", type=int, default=0, help="0 to 2**32-1")
    mmsa.add_argument("--bias-train", type=float, default=0.8,
                      help="how strongly bias words follow the label in train (0..1)")
    mmsa.add_argument("--bias-test", type=float, default=0.0,
                      help="the same in valid and test; differs from --bias-train for a distribution shift")
    mmsa.set_defaults(func=cmd_synth_mmsa)

    features = data_group(data, "features", "compute model inputs from raw recordings")
    audio = features.add_parser("audio", help="log-mel filterbank or MFCC sequences from .wav files (torchaudio)")
    audio.add_argument("--wav-dir", required=True, help="folder with the .wav clips (clip id = file name)")
    audio.add_argument("--out", required=True,
                       help="new .npz file (read with numpy.load(FILE, allow_pickle=False) or "
                            "robustmm.data.audio.read_audio_features): ids, lengths, features (every clip's "
                            "frames one after another), config (JSON)")
    audio.add_argument("--kind", choices=["logmel", "mfcc"], default="logmel",
                       help="log-mel filterbank energies or MFCCs (taken from the log-mel bands)")
    audio.add_argument("--n-mels", type=int, default=40, help="mel bands, positive")
    audio.add_argument("--n-mfcc", type=int, default=13, help="MFCCs per frame with --kind mfcc, at most --n-mels")
    audio.add_argument("--frame-ms", type=float, default=25.0, help="analysis window (Hann) in milliseconds")
    audio.add_argument("--hop-ms", type=float, default=10.0, help="step between frames in milliseconds")
    audio.add_argument("--sample-rate", type=int, default=16000, help="clips are resampled to this rate")
    audio.set_defaults(func=cmd_features_audio)
