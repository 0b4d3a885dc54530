"""Names that become file or folder names, and paths that must stay inside their folder.

Study names, method ids, scenario names and subject ids end up in paths (run folders,
checkpoints, plots, generated files). They are checked at config time to a safe character set,
so ``../../x`` or ``/etc/x`` can never make robustmm write outside the run folder; :func:`inside`
is the second line of defence at write time. No heavy imports here (the config schema uses it).
"""

from __future__ import annotations

import fnmatch
import os
import re
from pathlib import Path

from robustmm.errors import RunDirectoryError
from robustmm.text import counted

#: characters after the first (a letter or digit) of a file/folder name, and of a display name
NAME_CHARS, LABEL_CHARS = "A-Za-z0-9._+=-", "A-Za-z0-9 ._+=@,()%-"
SAFE_NAME = re.compile(rf"[A-Za-z0-9][{NAME_CHARS}]{{0,127}}")
LABEL = re.compile(rf"[A-Za-z0-9][{LABEL_CHARS}]{{0,127}}")


def _checked(value: str, pattern: re.Pattern, chars: str, problem: str) -> str:
    """``value`` when ``pattern`` matches it whole and it holds no ``..``; otherwise ValueError with
    ``problem`` and a suggestion: every run of other characters made one '_'."""
    text = str(value)
    if pattern.fullmatch(text) and ".." not in text:
        return text
    fixed = re.sub(r"\.\.+", ".", re.sub(f"[^{chars}]+", "_", text))
    fixed = re.sub(r"^[^A-Za-z0-9]+", "", fixed)[:128].rstrip("._ ")
    raise ValueError(problem + (f"; e.g. {fixed!r}" if fixed else ""))


def check_name(value: str, what: str) -> str:
    """A name that becomes a file or folder name: letters, digits and ``. _ + = -``, starting with a
    letter or digit (so no ``/``, ``..``, spaces or hidden names). Raises ValueError otherwise."""
    return _checked(value, SAFE_NAME, NAME_CHARS,
                    f"{what} {str(value)!r} is used as a file/folder name and may only hold letters, digits and "
                    "'. _ + = -' (starting with a letter or digit, no '..', at most 128 characters)")


def check_label(value: str, what: str) -> str:
    """A display name that may end up in a file name (scenario names in plot files): like
    :func:`check_name` but spaces, '@', ',', '(', ')' and '%' are allowed too."""
    return _checked(value, LABEL, LABEL_CHARS,
                    f"{what} {str(value)!r} may only hold letters, digits, spaces and '. _ + = @ , ( ) % -' "
                    "(starting with a letter or digit, no '/' or '..', at most 128 characters)")


def check_relative(value: str, what: str) -> str:
    """A path given relative to a folder, which robustmm may write there (e.g. a synthetic file named by
    the study): not empty, not absolute, no ``..``. Raises ValueError otherwise."""
    path = Path(str(value))
    if not str(value).strip() or path.is_absolute() or ".." in path.parts:
        raise ValueError(f"{what} {str(value)!r} must be a path inside its folder: relative, without '..'")
    return str(value)


def inside(base: Path, *parts: str | os.PathLike) -> Path:
    """``base / parts``, refused when it resolves outside ``base`` (``..``, absolute parts, links)."""
    base_resolved = Path(base).resolve()
    target = Path(base).joinpath(*parts)
    resolved = target.resolve()
    if resolved != base_resolved and base_resolved not in resolved.parents:
        raise RunDirectoryError(f"refused to write {target}: it resolves to {resolved}, outside {base_resolved}")
    return target


def check_links_inside(folder: Path, what: str, in_place: tuple[str, ...] = ()) -> None:
    """Refuse a folder robustmm is about to write into again (``--resume``, ``robustmm report``) when a
    link in it points outside it: a ``log.txt`` or ``plots/`` linked elsewhere would make the run append
    or write there. Links that stay inside the folder are fine. ``in_place``: name patterns of the files
    the caller appends to or rewrites in place (not by a rename); one that has other hard links is
    refused too, since such a write changes every name of the file, also one outside the folder (other
    files may be hard links: a rename replaces them, as the sweep's final runs rely on for checkpoints)."""
    base = Path(folder).resolve()
    for parent, dirs, files in os.walk(base):  # links to folders are listed but not followed
        for name in dirs + files:
            link = Path(parent) / name
            if not link.is_symlink():
                continue
            target = link.resolve()
            if target != base and base not in target.parents:
                raise RunDirectoryError(f"{what} {folder}: {link.relative_to(base)} is a link to {target}, outside "
                                        "the folder, and robustmm writes only inside it; replace the link with a copy "
                                        "of what it points to, or remove it")
        for name in files:
            path = Path(parent) / name
            if not any(fnmatch.fnmatchcase(name, p) for p in in_place) or not path.exists():
                continue
            links = path.stat().st_nlink  # of the file itself, also when reached through a link inside
            if links > 1:
                shown = Path(folder) / path.relative_to(base)
                raise RunDirectoryError(
                    f"{what} {folder}: {path.relative_to(base)} has {counted(links - 1, 'other hard link')}, perhaps "
                    "outside the folder, and robustmm appends to it or rewrites it in place, which would change every "
                    f"linked copy; give it a copy of its own (cp {shown} {shown}.copy && mv {shown}.copy {shown}) and "
                    "run the command again")
