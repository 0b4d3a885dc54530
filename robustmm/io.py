"""Atomic file writes, leftovers of interrupted writes, and loading without running code.

* A result file is either the old one or the complete new one (written to a hidden
  ``.<name>.XXXX.tmp`` next to it, synced to the disk, then renamed: :func:`replace_synced`). The file gets the permissions of an ordinary
  ``open()`` under the user's umask (``mkstemp`` alone would give 0600).
* A folder published by one rename is synced the same way first (:func:`rename_folder_synced`).
* A save killed with SIGKILL can leave such a ``.tmp`` file; :func:`remove_stale_tmp` deletes
  them when the folder is used again (a run folder: its lock keeps out any other writer).
* In a folder that other processes may be writing at the same time (a data root shared by runs and
  sweep workers: the ADNI volume cache), :func:`save_torch_shared` names its temporary file after the
  host and holds an exclusive ``flock`` on it until the rename; :func:`remove_abandoned_tmp` deletes
  only such files that nobody holds (the kernel releases a killed process's lock, whatever its pid
  was reused for), untouched for :data:`ABANDONED_AFTER` seconds (the instant between creating and
  locking a file), and written on this host, since another host's lock may not be visible here (a
  network file system): another host's, or any where the file system has no locks, only after
  :data:`FOREIGN_AFTER` seconds without a write.
* :func:`load_torch` never executes code from a file: ``torch.load(weights_only=True)``, and any
  failure becomes a :class:`~robustmm.errors.DataError` naming the file.
* Names that become paths, and paths that must stay inside their folder (``inside``): see
  :mod:`robustmm.names`.
"""

from __future__ import annotations

import errno
import json
import os
import pickle
import re
import socket
import stat
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from robustmm.errors import DataError, RunDirectoryError

try:
    import fcntl
except ImportError:  # Windows: no flock; the age rule alone decides
    fcntl = None  # type: ignore[assignment]

#: hidden temporary files written by this module (``.<name>.<random>.tmp``) and by data preparation
#: (``.tmp_<random><suffix>``)
_TMP_PATTERNS = (re.compile(r"^\..+\.[A-Za-z0-9_]{6,}\.tmp$"), re.compile(r"^\.tmp_[A-Za-z0-9_]{6,}"))
#: :func:`save_torch_shared`'s temporary files: ``.<name>.<host>@<random>.tmp``
_SHARED_TMP = re.compile(r"^\..+\.(?P<host>[A-Za-z0-9-]{1,40})@[A-Za-z0-9_]{6,}\.tmp$")
#: seconds without a write after which an unlocked temporary file of this host counts as abandoned
ABANDONED_AFTER = 60.0
#: the same for another host's file, or where the file system has no locks
FOREIGN_AFTER = 24 * 3600.0


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def apply_umask(path: str | os.PathLike, mode: int = 0o666) -> None:
    """Give a file made by ``mkstemp`` (mode 0600) the mode ``open()`` would have given it."""
    os.chmod(path, mode & ~current_umask())


def refuse_broken_link(path: Path, what: str) -> None:
    """A RunDirectoryError when ``path`` is a link to nothing (e.g. to a disk that is not mounted):
    creating the folder would create it wherever the link points, or replace the link."""
    if path.is_symlink() and not path.exists():
        raise RunDirectoryError(f"{what}: {path} is a link to {os.readlink(path)}, which does not exist; remove the "
                                "link or choose another folder")


def create_folder(path: str | os.PathLike, what: str, exist_ok: bool = False) -> Path:
    """``path`` made a folder, parents included. What the OS refuses (a file or a broken link on the
    way, no permission, ``path`` already there unless ``exist_ok``) is a RunDirectoryError naming
    ``what`` (e.g. ``--out``), not a traceback."""
    path = Path(path)
    refuse_broken_link(path, what)  # mkdir would only say "File exists"
    try:
        path.mkdir(parents=True, exist_ok=exist_ok)
    except OSError as exc:
        raise RunDirectoryError(f"{what}: cannot create the folder {path} ({exc.strerror}: {exc.filename}); choose "
                                "another folder, or remove the file or broken link that stands on its path") from None
    return path


def replace_synced(tmp: str | os.PathLike, path: str | os.PathLike) -> None:
    """``os.replace(tmp, path)`` once ``tmp``'s content is on the disk, then the folder's entry too
    (best effort). Without the first fsync a power loss soon after the rename can leave ``path``
    empty: file systems may write the rename before the data (delayed allocation)."""
    fd = os.open(tmp, os.O_RDONLY)  # the file is closed, so its data is in the OS, not in a user buffer
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    sync_folder_entries(Path(path).parent)  # makes the rename itself durable


def sync_folder_entries(folder: str | os.PathLike) -> None:
    """fsync ``folder`` itself, so the names it lists (a rename into it) are on the disk; best effort:
    some systems (and file systems) cannot open or sync a folder."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def sync_tree(folder: str | os.PathLike) -> None:
    """fsync every regular file below ``folder`` (links are not followed), then every folder's list of
    names, deepest first, ``folder`` last."""
    for below, _, files in os.walk(folder, topdown=False):
        for name in files:
            path = Path(below) / name
            if path.is_symlink() or not path.is_file():
                continue
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        sync_folder_entries(below)


def rename_folder_synced(folder: str | os.PathLike, target: str | os.PathLike) -> None:
    """``os.rename(folder, target)`` once everything in ``folder`` is on the disk (:func:`sync_tree`), then
    the parent's entry too: the folder counterpart of :func:`replace_synced`, for a folder published whole
    by one rename (without it a power loss soon after can leave the renamed folder with empty or missing
    files). An OSError of the rename itself (``target`` exists and is not empty) reaches the caller."""
    sync_tree(folder)
    os.rename(folder, target)
    sync_folder_entries(Path(target).parent)


def write_atomic(path: Path, write: Callable[[str], None], shared: bool = False) -> None:
    """``write(tmp)`` into a temporary file next to ``path``, then renamed to ``path``; on any failure the
    temporary file is removed. ``shared``: the folder may be written by other processes at once (see
    :func:`save_torch_shared`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{path.name}.{_host_tag()}@" if shared else f".{path.name}."
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=prefix, suffix=".tmp")
    if not (shared and _try_lock(fd)):  # the lock lasts while fd is open: until the rename is done
        os.close(fd)
        fd = -1
    try:
        write(tmp)
        apply_umask(tmp)
        replace_synced(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if fd >= 0:
            os.close(fd)


def _host_tag() -> str:
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:40] or "host"


def _try_lock(fd: int) -> bool | None:
    """An exclusive flock on ``fd`` without waiting: True; False when another process holds one; None where
    the file system (or OS) has no such locks."""
    if fcntl is None:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError as exc:
        return False if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK) else None


def save_torch_shared(obj: Any, path: Path) -> None:
    """:func:`save_torch_atomic` into a folder that other processes may be writing at the same time; a
    temporary file left by a killed process is removed by :func:`remove_abandoned_tmp`, never one being written."""
    write_atomic(path, lambda tmp: torch.save(obj, tmp), shared=True)


def remove_abandoned_tmp(folder: Path) -> list[Path]:
    """Delete the temporary files of :func:`save_torch_shared` in ``folder`` whose writer is gone; returns them.
    A file is abandoned when no process holds its lock (on this host), it had no write for
    :data:`ABANDONED_AFTER` seconds, and, for another host's file or without locks, :data:`FOREIGN_AFTER`."""
    folder = Path(folder)
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    here = _host_tag()
    for path in sorted(folder.glob(".*.tmp")):
        found = _SHARED_TMP.fullmatch(path.name)
        try:
            st = path.lstat()
        except OSError:
            continue
        if found is None or not stat.S_ISREG(st.st_mode):
            continue
        idle = time.time() - st.st_mtime
        if idle < ABANDONED_AFTER:  # maybe created an instant ago, before its writer could lock it
            continue
        try:
            fd = os.open(path, os.O_RDWR | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            continue
        try:
            held = _try_lock(fd)
            if held is False or ((held is None or found["host"] != here) and idle < FOREIGN_AFTER):
                continue
            path.unlink()  # while holding its lock: no writer can take it in between
            removed.append(path)
        except OSError:
            continue
        finally:
            os.close(fd)
    return removed


def save_figure(fig: Any, path: Path, dpi: int = 100, **savefig_options: Any) -> Path:
    """Write a matplotlib figure to ``path`` as PNG atomically (a resume never leaves half a plot or
    writes through a link to the old file) and close it."""
    import matplotlib.pyplot as plt

    write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=dpi, format="png", **savefig_options))
    plt.close(fig)
    return Path(path)


def save_torch_atomic(obj: Any, path: Path) -> None:
    write_atomic(path, lambda tmp: torch.save(obj, tmp))


def write_text_atomic(path: Path, text: str) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)

    write_atomic(path, write)


def write_json_atomic(path: Path, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def remove_stale_tmp(folder: Path, recursive: bool = True) -> list[Path]:
    """Delete the temporary files an interrupted atomic write left in ``folder``; returns them.
    Only names this module (and data preparation) create are touched."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    files = folder.rglob(".*") if recursive else folder.glob(".*")
    removed = []
    for path in files:
        if path.is_file() and not path.is_symlink() and any(p.match(path.name) for p in _TMP_PATTERNS):
            try:
                path.unlink()
                removed.append(path)
            except OSError:
                pass
    return removed


# ---------------------------------------------------------------------------- safe loading
def to_safe(obj: Any) -> Any:
    """``obj`` with numpy scalars/arrays turned into Python numbers/tensors and tuples kept, so
    that ``torch.load(weights_only=True)`` can read it back."""
    if isinstance(obj, dict):
        return {to_safe(k): to_safe(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [to_safe(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(to_safe(v) for v in obj)
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(obj))
    if isinstance(obj, Path):
        return str(obj)
    return obj


def load_torch(path: str | Path, what: str = "checkpoint", map_location: Any = "cpu", mmap: bool = False) -> Any:
    """``torch.load(path, weights_only=True)``: tensors and plain containers only, never code.

    A file that needs anything else (a pickled class, a function) is refused, and a truncated
    or corrupt file is reported; both as :class:`DataError` naming ``what`` and the file.
    ``mmap``: map the tensors' storage from the file instead of reading it into memory.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{what} {path} does not exist")
    try:
        return torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "weights_only" in str(exc) or "Unsupported" in str(exc) or "global" in str(exc).lower():
            raise DataError(f"{what} {path} was refused: it holds Python objects other than tensors and plain "
                            f"containers ({first[:200]}), and loading those could run code from the file. robustmm "
                            "only loads checkpoints with torch.load(weights_only=True); use a file robustmm wrote, or "
                            "re-save the weights as a plain state_dict in a trusted session") from None
        raise DataError(f"{what} {path} is truncated or corrupt ({first[:200]}); delete it (or copy it again) "
                        "so that it is written anew") from None
    except (EOFError, RuntimeError, OSError, ValueError, zipfile.BadZipFile, AttributeError, KeyError,
            IndexError, TypeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{what} {path} is truncated or corrupt ({type(exc).__name__}: {first[:200]}); delete it "
                        "(or copy it again) so that it is written anew") from None
