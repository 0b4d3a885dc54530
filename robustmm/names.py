"""Names that become file or folder names, and paths that must stay inside their folder.

Study names, method ids, scenario names and subject ids end up in paths (run folders,
checkpoints, plots, generated files). They are checked at config time to a safe character set,
so ``../../x`` or ``/etc/x`` can never make robustmm write outside the run folder; :func:`inside`
is the second line of defence at write time. No heavy imports here (the config schema uses it).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from robustmm.errors import RunDirectoryError

SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+=-]{0,127}")


def _suggest(text: str, unsafe: str) -> str:
    """``; e.g. 'x_y'``: ``text`` with every run of unsafe characters made one '_' (empty when nothing is left)."""
    fixed = re.sub(r"\.\.+", ".", re.sub(unsafe, "_", text))
    fixed = re.sub(r"^[^A-Za-z0-9]+", "", fixed)[:128].rstrip("._ ")
    return f"; e.g. {fixed!r}" if fixed else ""


def check_name(value: str, what: str) -> str:
    """A name that becomes a file or folder name: letters, digits and ``. _ + = -``, starting with a
    letter or digit (so no ``/``, ``..``, spaces or hidden names). Raises ValueError otherwise."""
    text = str(value)
    if not SAFE_NAME.fullmatch(text) or ".." in text:
        raise ValueError(f"{what} {text!r} is used as a file/folder name and may only hold letters, digits and "
                         "'. _ + = -' (starting with a letter or digit, no '..', at most 128 characters)"
                         + _suggest(text, r"[^A-Za-z0-9._+=-]+"))
    return text


LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._+=@,()%-]{0,127}")


def check_label(value: str, what: str) -> str:
    """A display name that may end up in a file name (scenario names in plot files): like
    :func:`check_name` but spaces, '@', ',', '(', ')' and '%' are allowed too."""
    text = str(value)
    if not LABEL.fullmatch(text) or ".." in text:
        raise ValueError(f"{what} {text!r} may only hold letters, digits, spaces and '. _ + = @ , ( ) % -' "
                         "(starting with a letter or digit, no '/' or '..', at most 128 characters)"
                         + _suggest(text, r"[^A-Za-z0-9 ._+=@,()%-]+"))
    return text


def inside(base: Path, *parts: str | os.PathLike) -> Path:
    """``base / parts``, refused when it resolves outside ``base`` (``..``, absolute parts, links)."""
    base_resolved = Path(base).resolve()
    target = Path(base).joinpath(*parts)
    resolved = target.resolve()
    if resolved != base_resolved and base_resolved not in resolved.parents:
        raise RunDirectoryError(f"refused to write {target}: it resolves to {resolved}, outside {base_resolved}")
    return target


