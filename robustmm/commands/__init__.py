"""CLI commands beyond ``run``/``report``/``data synth adni``: one module per capability, each
with ``register(sub, data, synth)`` (see ``robustmm.cli.command_modules``)."""

from __future__ import annotations

import argparse
import contextlib
import signal
from pathlib import Path
from typing import Any, Callable, Iterator

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


def write_new_folder(out: Path, write: Callable[[Path], Any]) -> None:
    """``write(folder)`` generates into a temporary sibling of ``out`` that is renamed to ``out`` at the
    end (:func:`~robustmm.data.registry.create_once`): a refused argument or an interrupted write leaves
    nothing behind, so the same command can simply be run again. ``out`` is new or an empty folder."""
    from robustmm.data.registry import create_once

    require_new_folder(out)
    with sigterm_interrupts():  # a kill (SIGTERM) unwinds too, so the temporary folder is removed
        create_once(out, write, "--out")


def int_at_least(low: int) -> Callable[[str], int]:
    """argparse type of an integer that must be at least ``low``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low} (got {value})")
        return value

    return parse


#: argparse type of a count that must be at least 1
positive_int = int_at_least(1)


def fraction(text: str) -> float:
    """argparse type of a fraction in [0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:  # NaN fails too
        raise argparse.ArgumentTypeError(f"must be a fraction in [0, 1] (got {text})")
    return value


def positive_number(text: str) -> float:
    """argparse type of a number above 0 (seconds, ...)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0.0:  # NaN fails too
        raise argparse.ArgumentTypeError(f"must be a number above 0 (got {text})")
    return value


class MinMax(argparse.Action):
    """A ``nargs=2`` MIN MAX option, refused unless MIN <= MAX."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        low, high = values
        if low > high:
            parser.error(f"argument {option_string}: MIN {low} is larger than MAX {high}; give MIN <= MAX")
        setattr(namespace, self.dest, list(values))


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
