"""Run directories: created once, never overwritten; resumable."""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import logging
import os
import platform
import re
import socket
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Iterator

import yaml

from robustmm.config.loader import RUN_RECORD_FIELDS, RUN_RECORD_KEY
from robustmm.errors import RunDirectoryError
from robustmm.io import create_folder, write_text_atomic

try:
    import fcntl
    HAS_FLOCK = True
except ImportError:  # Windows
    HAS_FLOCK = False

CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.json"
#: a fold of a cross-validation run: it has no config.yaml of its own (the run's is in the folder above)
FOLD_FOLDER = re.compile(r"fold_\d+")
LOG_FILE = "log.txt"
#: held (an advisory lock) by the process that trains, evaluates or resumes the run in the folder
LOCK_FILE = ".robustmm.lock"
#: the folder that holds the robustmm package: the repository root when run from a checkout
PACKAGE_PARENT = Path(__file__).resolve().parents[2]
PACKAGES = ("robustmm", "torch", "monai", "nibabel", "numpy", "scikit-learn", "lifelines", "optuna", "pydantic")


def new_run_dir(output_dir: Path, study: str, out: Path | None = None) -> Path:
    """``out`` if given (must not exist), else ``output_dir/study/<timestamp>`` (unique)."""
    if out is not None:
        check_out_is_new(Path(out))
        return create_folder(Path(out), "--out")
    base = create_folder(Path(output_dir) / study, "output_dir", exist_ok=True)
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    for i in range(1000):
        candidate = base / (stamp if i == 0 else f"{stamp}-{i}")
        try:
            candidate.mkdir(exist_ok=False)
            return candidate
        except FileExistsError:
            continue
    raise RunDirectoryError(f"could not create a new run folder under {base}")


@contextlib.contextmanager
def exclusive_run_folder(run_dir: Path) -> Iterator[None]:
    """Hold the run folder's lock for the block, so that two processes never write one run (two
    ``--resume`` of the same folder would delete each other's temporary files and mix their results).
    The lock is released when the process ends in any way, so a killed run never blocks its resume.
    Where the file system offers no locks (Windows, some network mounts), the block runs unlocked."""
    if not HAS_FLOCK:  # Windows
        yield
        return
    path = Path(run_dir) / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)  # never through a link
    except OSError as exc:
        raise RunDirectoryError(f"{path}: the run folder's lock file cannot be opened ({exc.strerror}); it must be a "
                                "plain file robustmm may write: remove it (no robustmm command may be at work on "
                                "this folder) and run the command again") from None
    try:
        if _lock(fd, path):
            started = _dt.datetime.now().isoformat(timespec="seconds")
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}, since {started}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


def _lock(fd: int, path: Path) -> bool:
    """Lock ``fd`` (True), or False where the file system has no locks; refuses a folder locked already."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError as exc:
        if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
            logging.getLogger("robustmm").warning("%s: no lock on this file system (%s); do not run two robustmm "
                                                  "commands on this run folder at once", path, exc)
            return False
    holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "another process"
    raise RunDirectoryError(f"{path.parent} is in use by another robustmm command ({holder}); wait for it to end "
                            "(or stop it) and run this command again")


def check_out_is_new(out: Path) -> None:
    """``--out`` names a folder to create: refuse one that exists."""
    if out.exists():
        continue_it = (f", or continue that run with --resume {out}" if (out / CONFIG_FILE).is_file() else "")
        what = "is a file" if not out.is_dir() else "already exists"
        raise RunDirectoryError(f"--out {out} {what}; robustmm never overwrites anything. Choose a new "
                                f"folder{continue_it}")


def read_yaml(path: Path, error: Callable[[str], Exception]) -> Any:
    """The YAML document of ``path``; ``error(problem)`` raised when it cannot be read or parsed."""
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise error(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__) from None


def check_resumable(run_dir: Path) -> dict[str, Any]:
    run_dir = Path(run_dir)
    cfg = run_dir / CONFIG_FILE
    if not run_dir.is_dir():
        what = "is a file, not a run folder" if run_dir.exists() else "no such folder"
        raise RunDirectoryError(f"--resume {run_dir}: {what}; give the run folder to continue (its path was "
                                "printed when the run started)")
    if not cfg.is_file() and (run_dir / LOG_FILE).is_file():  # a run writes its log, then its config
        raise RunDirectoryError(f"--resume {run_dir}: no {CONFIG_FILE} there: the run stopped before writing it, so "
                                "it trained nothing; remove the folder and start a new run (without --resume)")
    if not cfg.is_file():
        raise RunDirectoryError(f"--resume {run_dir}: no {CONFIG_FILE} there; is it a robustmm run folder?")
    saved = read_yaml(cfg, lambda problem: RunDirectoryError(
        f"--resume {run_dir}: {cfg} cannot be read ({problem}); is it a robustmm run folder? A run whose "
        "config.yaml is damaged cannot be continued: start a new one"))
    if not isinstance(saved, dict):
        what = "is empty" if saved is None else f"holds a {type(saved).__name__}, not a study"
        raise RunDirectoryError(f"--resume {run_dir}: {cfg} {what}; is it a robustmm run folder?")
    return saved


def environment() -> dict[str, Any]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {"python": sys.version.split()[0], "platform": platform.platform(), "packages": versions,
            "git_commit": git_commit()}


def git_commit(root: Path = PACKAGE_PARENT) -> str | None:
    """The commit (``+dirty`` with uncommitted changes) of the robustmm checkout ``root``; None when
    robustmm does not run from a checkout. Only a repository whose top level is ``root`` counts: an
    installed copy inside another repository (a project's virtual environment) would otherwise
    record that repository's commit as robustmm's."""
    if not (root / ".git").exists():  # a folder, or a file in a git worktree
        return None
    try:
        top = subprocess.run(["git", "-C", str(root), "rev-parse", "--show-toplevel", "HEAD"],
                             capture_output=True, text=True, timeout=5)
        if top.returncode != 0:
            return None
        toplevel, commit = top.stdout.splitlines()[:2]
        if Path(toplevel).resolve() != root.resolve():
            return None
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    return commit + ("+dirty" if dirty.stdout.strip() else "")


def config_text(run_dir: Path) -> str:
    """The resolved study a run folder's report shows: its config.yaml, or for a fold of a
    cross-validation run the run's config.yaml above it; "" when there is none."""
    run_dir = Path(run_dir)
    if (run_dir / CONFIG_FILE).is_file():
        return (run_dir / CONFIG_FILE).read_text()
    if FOLD_FOLDER.fullmatch(run_dir.name) and (run_dir.parent / CONFIG_FILE).is_file():
        return (f"# {run_dir.name} of the cross-validation run whose resolved study (../{CONFIG_FILE}) follows\n"
                + (run_dir.parent / CONFIG_FILE).read_text())
    return ""


def write_config(run_dir: Path, resolved: dict[str, Any], run_info: dict[str, Any]) -> None:
    unlisted = [k for k in run_info if k not in RUN_RECORD_FIELDS]
    if unlisted:  # load_study would refuse the file: `robustmm run RUN/config.yaml` must keep working
        raise ValueError(f"run record fields {unlisted} are not in robustmm.config.loader.RUN_RECORD_FIELDS; "
                         "add them there")
    doc = {**resolved, RUN_RECORD_KEY: run_info}
    write_text_atomic(Path(run_dir) / CONFIG_FILE, yaml.safe_dump(doc, sort_keys=False))


def attach_log(run_dir: Path) -> logging.Handler:
    handler = logging.FileHandler(Path(run_dir) / LOG_FILE)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("robustmm")
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    return handler
