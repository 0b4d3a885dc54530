"""``robustmm data convert mmsa FILE.pkl [--out FILE.npz]``: the safe copy of an MMSA pickle.

A pickle can run code when it is opened, so robustmm does not open MMSA pickles by default. This
command opens the file once -- run it only on a file from a source you trust -- and writes its
arrays and texts to a ``.npz`` (read later with ``allow_pickle=False``). Next to the pickle (the
default ``--out``) the loader finds it by itself and never opens the pickle again.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from robustmm.commands import data_group
from robustmm.errors import RobustMMError


def cmd_convert_mmsa(args: argparse.Namespace) -> int:
    from robustmm.data.mmsa import convert_mmsa, converted_path, load_mmsa_npz

    src = Path(args.file)
    if not src.is_file():
        raise RobustMMError(f"{src} does not exist; pass the MMSA pickle (e.g. datasets/mosi/aligned_50.pkl)")
    if src.suffix.lower() == ".npz":
        raise RobustMMError(f"{src} is already a .npz; nothing to convert")
    out = Path(args.out) if args.out else converted_path(src)
    if out.exists() and not args.force:
        raise RobustMMError(f"{out} exists; it is used instead of {src}. Delete it, or add --force to convert again")
    written = convert_mmsa(src, out)
    data = load_mmsa_npz(written, source=src)  # read back the way the loader will
    sizes = {k: len(v.get("regression_labels", [])) for k, v in data.items()}
    print(f"wrote {written} ({', '.join(f'{k}: {n}' for k, n in sizes.items())} utterances); robustmm reads it "
          f"instead of {src} from now on" + ("" if written == converted_path(src) else
                                             f" when data.root (or data.options.file) names {written}"))
    return 0


def register(sub, data, synth) -> None:
    convert = data_group(data, "convert", "write a safe copy of a data file that would otherwise run code")
    mmsa = convert.add_parser(
        "mmsa", help="MMSA pickle (aligned_50.pkl / unaligned_50.pkl) -> .npz, read from then on",
        description="Opens the pickle ONCE (only convert a file from a source you trust: a pickle can run code "
                    "when opened) and writes its arrays to a .npz next to it, which robustmm reads instead.")
    mmsa.add_argument("file", help="the MMSA pickle")
    mmsa.add_argument("--out", help="the .npz to write (default: the pickle's name with .npz)")
    mmsa.add_argument("--force", action="store_true", help="replace an existing --out")
    mmsa.set_defaults(func=cmd_convert_mmsa)
