"""CLI commands beyond ``run``/``report``/``data synth adni``: one module per capability, each
with ``register(sub, data, synth)`` (see ``robustmm.cli.command_modules``)."""

from __future__ import annotations

import argparse
import contextlib
import signal
from pathlib import Path
from typing import Iterator

from robustmm.errors import RobustMMError


def data_group(data: argparse._SubParsersAction, name: str, help: str) -> argparse._SubParsersAction:
    """The sub-commands of ``robustmm data <name>`` (e.g. ``check``, ``prepare``), created by
    whichever command module registers first; the others add their data kind to it."""
    parser = data.choices.get(name)
    if parser is None:
        parser = data.add_parser(name, help=help)
        return parser.add_subparsers(dest=f"{name}_kind", required=True)
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))


def require_new_folder(out: Path, option: str = "--out") -> None:
    """Refuse an output folder that exists and is not empty (or is a file): nothing is overwritten."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        kind = "is a file" if not out.is_dir() else "exists and is not empty"
        raise RobustMMError(f"{option} {out} {kind}; choose a new folder (nothing is overwritten)")


def positive_int(text: str) -> int:
    """argparse type of a count that must be at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 (got {value})")
    return value


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """Within the block SIGTERM (a scheduler's kill, ``timeout``) raises KeyboardInterrupt, so the run or
    sweep logs the interruption and says how to continue, as for Ctrl-C."""
    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
