"""The data a run was started on, recorded in its folder, so that ``--resume`` never mixes checkpoints
trained on one version of a cohort with training or evaluation on another.

``data_fingerprint.json`` lists every file the study's loader reads (:func:`data_sources`: for ADNI the
table, the manifest and the images it lists; for a table, PORPOISE or MMSA study its file; for a BraTS
or DisPro folder every file in it, hidden names such as a cache skipped): its path (relative to
``data.root``, absolute when outside it), size and modification time (ns), plus the sha256 of its
content for a table-like file up to :data:`HASH_LIMIT` and any file up to :data:`SMALL` (such a file
re-saved unchanged is not a change; a folder of volumes or feature bags costs one ``stat`` per file,
never a read, so a large file is compared by size and time only). Data that the
run generates from ``data.synthetic`` is described by the generator's settings in ``config.yaml`` (and
the folder's marker, checked by the loader), so no file is listed for it.

On ``--resume`` the files are listed again and compared; any file added, removed or changed stops the
run before it writes anything (:func:`check_unchanged`), unless ``--accept-data-change``, which records
the data as it is now (and the change, under ``accepted``). A folder of an older robustmm without the
file resumes with a notice, and gets one recorded then.
"""

from __future__ import annotations

import csv
import datetime as _dt
import glob
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Callable, Iterator

from robustmm.errors import RunDirectoryError
from robustmm.io import write_json_atomic

FINGERPRINT_FILE = "data_fingerprint.json"
VERSION = 1
#: content hashed (besides size and time) for table-like files up to this size, and for any file up to SMALL
#: (bounded cost: SMALL per file even in a folder of many thousand files)
HASH_LIMIT = 256 * 2**20
SMALL = 64 * 2**10
TABLE_SUFFIXES = (".csv", ".tsv", ".txt", ".json", ".yaml", ".yml", ".xlsx", ".xls", ".parquet", ".feather",
                  ".csv.gz", ".tsv.gz", ".csv.zip", ".zip")
#: files named per category in an error before "and N more"
SHOWN = 5

Source = tuple[Path, Callable[[str], bool] | None]  # a file, or a folder walked (with a file-name filter)


def data_sources(data: Any) -> list[Source]:
    """The files and folders the loader of ``data`` (the study's ``data`` section) reads."""
    root = Path(data.root)
    options = dict(getattr(data, "options", None) or {})
    if data.kind == "adni":  # not the whole folder: raw downloads and notes often share it
        return [(p, None) for p in _adni_files(data, root)]
    if data.kind == "table":
        return [(root if root.is_file() or options.get("file") is None else root / options["file"], None)]
    if data.kind == "tcga_porpoise":
        from robustmm.data.tcga import _table_cohort

        cohort = str(options.get("cohort") or "").lower()
        table = (root, None) if not root.is_dir() else (root, lambda name: _table_cohort(name) == cohort)
        return [table] + ([(Path(options["signatures"]), None)] if options.get("signatures") else [])
    if data.kind == "mmsa":
        from robustmm.data.mmsa import MMSAOptions, converted_path, resolve_mmsa_file

        path = resolve_mmsa_file(root, MMSAOptions.model_validate(options))
        # the .npz a loader converts from a pickle is derived from it (and checked against it by the loader)
        return [(path if path.exists() or not converted_path(path).exists() else converted_path(path), None)]
    return [(root, None)]  # adni-like folders of their own: dispro, brats, and kinds registered by users


def _adni_files(data: Any, root: Path) -> list[Path]:
    """The ADNI table, the manifest and every image file it lists, or, without a manifest, every file the
    folder patterns match for any subject (a subject added to the table later finds its images among them)."""
    from robustmm.data.adni import manifest_path

    found = [root / data.table]
    if data.manifest:
        found.append(root / data.manifest)
        try:
            with open(root / data.manifest, newline="", encoding="utf-8-sig") as fh:
                rows = [{(k or "").strip(): v for k, v in row.items()} for row in csv.DictReader(fh)]
        except (OSError, UnicodeDecodeError, csv.Error):
            return found  # the loader reports the manifest
        found += [manifest_path(root, text) for row in rows for col in ("mri_path", "pet_path")
                  if (text := (row.get(col) or "").strip())]
        return found
    for pattern in (data.mri_pattern, data.pet_pattern):
        if pattern:
            found += [Path(p) for p in sorted(glob.glob(glob.escape(str(root / pattern)).replace("{subject}", "*")))]
    return found


def _inside(path: Path, folder: Path) -> bool:
    return not os.path.relpath(os.path.normpath(path), os.path.normpath(folder)).startswith("..")


def _walk(folder: Path, keep: Callable[[str], bool] | None) -> Iterator[Path]:
    """Files below ``folder`` (links followed, each folder once), hidden names skipped."""
    seen: set[tuple[int, int]] = set()
    for below, dirs, files in os.walk(folder, followlinks=True):
        st = os.stat(below)
        if (st.st_dev, st.st_ino) in seen:  # a link back up the tree
            dirs[:] = []
            continue
        seen.add((st.st_dev, st.st_ino))
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith(".") and (keep is None or keep(name)):
                yield Path(below) / name


def _entry(path: Path) -> dict[str, Any] | None:
    try:
        st = path.stat()
    except OSError:  # vanished, or a broken link: as absent
        return None
    entry: dict[str, Any] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns}
    if st.st_size <= SMALL or (path.name.lower().endswith(TABLE_SUFFIXES) and st.st_size <= HASH_LIMIT):
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        entry["sha256"] = h.hexdigest()
    return entry


def compute(data: Any) -> dict[str, Any]:
    """The fingerprint document of the data ``data`` (the study's data section) names, as it is now."""
    doc: dict[str, Any] = {"version": VERSION, "kind": data.kind, "root": str(data.root)}
    if getattr(data, "synthetic", None) is not None:
        return {**doc, "synthetic": True, "files": {}}
    root = Path(data.root)
    base = root if root.is_dir() else root.parent
    files: dict[str, dict[str, Any]] = {}
    for path, keep in data_sources(data):
        for file in (_walk(path, keep) if path.is_dir() else [path]):
            entry = _entry(file)
            if entry is not None:
                key = os.path.relpath(file, base) if _inside(file, base) else os.path.abspath(file)
                files[Path(key).as_posix()] = entry
    return {**doc, "synthetic": False, "files": files}


def differences(old: dict[str, Any], new: dict[str, Any]) -> dict[str, list[str]]:
    """Files added, removed and changed (``name (what changed)``) from ``old`` to ``new``."""
    a, b = old.get("files") or {}, new.get("files") or {}
    changed = []
    for key in sorted(set(a) & set(b)):
        x, y = a[key], b[key]
        if x.get("size") != y.get("size"):
            changed.append(f"{key} (size {x.get('size')} -> {y.get('size')} bytes)")
        elif "sha256" in x and "sha256" in y:
            if x["sha256"] != y["sha256"]:
                changed.append(f"{key} (content)")
        elif x.get("mtime_ns") != y.get("mtime_ns"):  # a large file: only its time tells
            changed.append(f"{key} (modification time)")
    return {"added": sorted(set(b) - set(a)), "removed": sorted(set(a) - set(b)), "changed": changed}


def describe(diff: dict[str, list[str]]) -> str:
    parts = []
    for what, names in diff.items():
        if names:
            more = f" and {len(names) - SHOWN} more" if len(names) > SHOWN else ""
            parts.append(f"{len(names)} {what} ({', '.join(names[:SHOWN])}{more})")
    return "; ".join(parts)


def record(run_dir: Path, data: Any) -> None:
    """Write the fingerprint of the data as it is now into the new run folder ``run_dir``."""
    write_json_atomic(Path(run_dir) / FINGERPRINT_FILE, {**compute(data), "recorded": _now()})


def _now() -> str:
    return _dt.datetime.now().isoformat(timespec="seconds")


def check_unchanged(run_dir: Path, data: Any, accept: bool = False, sweep_final: bool = False) -> str | None:
    """Refuse (RunDirectoryError) to resume ``run_dir`` when the data differ from those recorded when it
    started; returns a notice for the log when the folder had no fingerprint or ``accept`` took a change
    (both record the data as they are now), else None. Writes only in those two cases. ``sweep_final``: the
    folder is a sweep's test evaluation (robustmm.tune.final), which ``robustmm sweep`` continues, so the
    advice is the sweep's (it has neither --resume nor --accept-data-change)."""
    run_dir = Path(run_dir)
    path = run_dir / FINGERPRINT_FILE
    now = compute(data)
    if not path.is_file():
        write_json_atomic(path, {**now, "recorded": _now(), "note": "recorded at a resume: the run started "
                                 "before robustmm recorded the data"})
        return (f"{run_dir} has no {FINGERPRINT_FILE} (started by an older robustmm): the data could not be "
                "compared with those the run started on; recorded now for later resumes")
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(stored, dict) or not isinstance(stored.get("files"), dict):
            raise ValueError("not a robustmm data fingerprint")
    except (OSError, ValueError) as exc:
        raise RunDirectoryError(f"--resume {run_dir}: {path} cannot be read ({exc}); it records the data the run "
                                "started on. Start a new run folder (without --resume), or, if you know the data "
                                "are unchanged, delete the file and resume again (the data are then recorded anew)"
                                ) from None
    diff = differences(stored, now)
    if not any(diff.values()):
        return None
    text = describe(diff)
    if not accept and sweep_final:
        raise RunDirectoryError(
            f"sweep test evaluation {run_dir}: the data under data.root {data.root} changed since the trial it "
            f"evaluates was trained (recorded in {path}): {text}. The sweep's trials were trained and chosen on the "
            "data as they were; evaluating them on other data would mix the two. Either restore the data as they "
            "were and run the same robustmm sweep command again, or start a new sweep on the data as they are now")
    if not accept:
        raise RunDirectoryError(
            f"--resume {run_dir}: the data under data.root {data.root} changed since the run started (recorded in "
            f"{path}): {text}. Its checkpoints were trained on the data as they were; continuing would mix the two. "
            "Either restore the data as they were and resume again, or start a new run folder (the same command "
            "without --resume); if the change does not matter (e.g. files copied with new modification times), "
            "add --accept-data-change to continue this run and record the data as they are now")
    accepted = [*stored.get("accepted", []), {"at": _now(), **{k: len(v) for k, v in diff.items()}, "files": text}]
    write_json_atomic(path, {**now, "recorded": stored.get("recorded"), "accepted": accepted})
    return f"--accept-data-change: the data changed since the run started ({text}); recorded as they are now"
