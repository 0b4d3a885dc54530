"""``data.kind`` -> dataset adapter (creating the embedded synthetic data on first use)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable

from robustmm.data.base import SYNTHETIC_MARKER, MultimodalDataset, synthetic_marker
from robustmm.errors import ConfigError, DataError
from robustmm.io import create_folder, rename_folder_synced, sync_folder_entries, sync_tree

_BUILDERS: dict[str, Callable[[Any, bool], MultimodalDataset]] = {}


def register_data(kind: str):
    def deco(fn: Callable[[Any, bool], MultimodalDataset]):
        _BUILDERS[kind] = fn
        return fn

    return deco


#: data kinds whose builder lives in another module ("module:function", imported on first use)
_LAZY = {
    "table": "robustmm.data.tables:build_from_config",
    "tcga_porpoise": "robustmm.data.tcga:build_porpoise_from_config",
    "dispro": "robustmm.data.tcga:build_dispro_from_config",
    "mmsa": "robustmm.data.mmsa:build_from_config",
    "brats": "robustmm.data.brats:build_from_config",
}


#: data kind -> the models of its data.options and data.synthetic ("module:Class"; None: it has none;
#: ADNI's are part of the study schema)
_OPTION_MODELS = {
    "table": ("robustmm.data.tables:TableOptions", None),
    "tcga_porpoise": ("robustmm.data.tcga:PorpoiseOptions", "robustmm.data.tcga:PorpoiseSynthOptions"),
    "dispro": ("robustmm.data.tcga:DisProOptions", "robustmm.data.tcga:DisProSynthOptions"),
    "mmsa": ("robustmm.data.mmsa:MMSAOptions", "robustmm.data.mmsa:MMSASynthOptions"),
    "brats": ("robustmm.data.brats:BraTSOptions", "robustmm.data.brats:BraTSSynthOptions"),
}


#: the built-in data kinds, each read from files under data.root (a kind registered by a user may not be)
FILE_KINDS = frozenset({"adni", *_LAZY})

#: data kind -> the check that the files its loader reads first under data.root exist ("module:function";
#: the loader runs it too, so the message is the same)
_ROOT_CHECKS = {
    "adni": "robustmm.data.adni:check_root",
    "table": "robustmm.data.tables:check_root",
    "tcga_porpoise": "robustmm.data.tcga:check_porpoise_root",
    "dispro": "robustmm.data.tcga:check_dispro_root",
    "mmsa": "robustmm.data.mmsa:check_root",
    "brats": "robustmm.data.brats:check_root",
}
#: per built-in kind, the check that a folder generated earlier from ``data.synthetic`` matches the study's
#: generator settings (run before a run folder is made, and again by the loader)
_SYNTHETIC_CHECKS = {
    "adni": "robustmm.data.registry:_check_adni_synthetic",
    "tcga_porpoise": "robustmm.data.tcga:check_porpoise_synthetic",
    "dispro": "robustmm.data.tcga:check_dispro_synthetic",
    "mmsa": "robustmm.data.mmsa:check_synthetic",
    "brats": "robustmm.data.brats:check_synthetic",
}


def build_dataset(cfg: Any, progress: bool = True) -> MultimodalDataset:
    if cfg.kind not in _BUILDERS and cfg.kind in _LAZY:
        _BUILDERS[cfg.kind] = _resolve(_LAZY[cfg.kind])
    if cfg.kind not in _BUILDERS:
        raise ConfigError(f"data.kind '{cfg.kind}' has no loader in this installation (known: {sorted(_BUILDERS)})")
    return _BUILDERS[cfg.kind](cfg, progress)


def _resolve(target: str) -> Any:
    """The object a "module:name" string names (imported on first use)."""
    import importlib

    module, name = target.split(":")
    return getattr(importlib.import_module(module), name)


def options_model(kind: str, section: str = "options") -> Any:
    """The model of ``data.options`` (``section="synthetic"``: of ``data.synthetic``) of a built-in
    data kind, or None."""
    target = _OPTION_MODELS.get(kind, (None, None))[("options", "synthetic").index(section)]
    return None if target is None else _resolve(target)


def check_data_options(cfg: Any, source: str | None = None, origins: dict[str, str] | None = None) -> None:
    """``data.options`` and ``data.synthetic`` checked against their kind's models when the study is
    read, so that a bad value is refused before a run folder (or the data folder) is made (the
    builder validates them again). ``source`` (the study file) and ``origins`` (key paths set on the
    command line) go into the error."""
    from pydantic import ValidationError

    from robustmm.config.loader import format_validation_error

    for section in ("options", "synthetic"):
        model, value = options_model(cfg.kind, section), getattr(cfg, section, None)
        if model is None or (value is None and section == "synthetic"):
            continue
        try:
            model.model_validate(dict(value or {}))
        except ValidationError as err:
            what = f"data (kind {cfg.kind})"
            raise ConfigError(format_validation_error(err, model, f"{source}: {what}" if source else what,
                                                      prefix=f"data.{section}", origins=origins)) from None


def check_data_root(cfg: Any) -> None:
    """The files a built-in kind's loader reads first under ``data.root`` exist, checked before a run folder
    is made; not when ``data.synthetic`` is about to write the data there (see :func:`create_once`)."""
    target = _ROOT_CHECKS.get(cfg.kind)
    if target is None or (cfg.synthetic is not None and not holds_data(Path(cfg.root))):
        return
    _resolve(target)(cfg)
    if cfg.synthetic is not None and cfg.kind in _SYNTHETIC_CHECKS:
        _resolve(_SYNTHETIC_CHECKS[cfg.kind])(cfg)


def holds_data(target: Path) -> bool:
    """Whether ``target`` is a file or a non-empty folder, which :func:`create_once` leaves as it is."""
    return target.exists() and (not target.is_dir() or any(target.iterdir()))


def create_once(target: Path, write: Callable[[Path], Any], what: str = "data.root") -> None:
    """Write a generated dataset into a temporary sibling folder, then rename it into place,
    so an interrupted generation never leaves a half-written dataset behind. An existing empty
    folder at ``target`` (possibly a link or a mount point, which a rename cannot replace) is
    filled entry by entry, the ``SYNTHETIC_DATA.json`` marker last; anything else is kept as it is.
    ``what`` names ``target`` in the error when the folder cannot be made (e.g. a broken link)."""
    target = Path(target)
    if holds_data(target):
        return
    if target.is_symlink() and not target.exists():  # the rename at the end would fail after all the work
        create_folder(target, what)  # raises, naming the broken link
    create_folder(target.parent, what, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        write(tmp / "data")
        if target.is_dir():
            sync_tree(tmp / "data")  # the marker, moved in last, must not reach the disk before the data
            _fill_empty_folder(tmp / "data", target)
            sync_folder_entries(target)
            return
        try:
            rename_folder_synced(tmp / "data", target)
        except OSError:
            if not target.exists():  # lost a race with another process: theirs is as good
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _fill_empty_folder(source: Path, target: Path) -> None:
    entries = sorted(source.iterdir(), key=lambda p: p.name == SYNTHETIC_MARKER)
    moved: list[Path] = []
    try:
        for entry in entries:
            moved.append(Path(shutil.move(str(entry), str(target / entry.name))))
    except OSError as exc:
        for done in moved:  # leave the folder empty, as found, so that a later run writes it again
            if done.is_dir():
                shutil.rmtree(done, ignore_errors=True)
            else:
                done.unlink(missing_ok=True)
        raise DataError(f"could not write the generated data into {target} ({exc}); check that the folder is "
                        "writable, or give another folder") from None


def check_synthetic_matches(root: Path, expected: dict[str, Any], defaults: dict[str, Any] | None = None,
                            file: str | None = None) -> None:
    """A synthetic folder made by another generator version or with other arguments than the
    study asks for would silently give different results: refuse it. ``defaults`` are the values
    of arguments added after a folder may have been written (a marker without them was written
    with them at these values). ``file``: the generated file the study reads; a marker naming
    another file of the folder describes that file, not this one (nothing to check)."""
    marker = synthetic_marker(root)
    if marker is None or (file is not None and marker.get("file") not in (None, file)):
        return
    defaults = defaults or {}
    found = {k: marker.get(k, defaults.get(k)) for k in expected}
    if found != expected:
        differ = ", ".join(f"{k} {found[k]!r} (study: {expected[k]!r})" for k in expected if found[k] != expected[k])
        raise DataError(f"{root} holds a synthetic cohort generated with other arguments: {differ}. Delete the "
                        "folder (it is regenerated on the next run) or set data.root to another folder")


@register_data("adni")
def _adni(cfg, progress: bool) -> MultimodalDataset:
    from robustmm.data.adni import AdniDataset
    from robustmm.data.synth.adni import KNOB_DEFAULTS, write_synthetic_adni

    if cfg.synthetic is not None:
        s = cfg.synthetic
        knobs = {k: float(getattr(s, k)) for k in KNOB_DEFAULTS if k != "pet_missing"}
        create_once(Path(cfg.root), lambda d: write_synthetic_adni(d, s.subjects, s.seed, s.pet_missing,
                                                                    tuple(s.native_shape), progress=progress,
                                                                    **knobs))
        _check_adni_synthetic(cfg)
    return AdniDataset(cfg, progress=progress)


def _check_adni_synthetic(cfg) -> None:
    from robustmm.data.synth.adni import GENERATOR_VERSION, KNOB_DEFAULTS

    s = cfg.synthetic
    knobs = {k: float(getattr(s, k)) for k in KNOB_DEFAULTS if k != "pet_missing"}
    check_synthetic_matches(Path(cfg.root), {"version": GENERATOR_VERSION, "subjects": s.subjects, "seed": s.seed,
                                             "pet_missing": s.pet_missing, "native_shape": list(s.native_shape),
                                             **knobs}, defaults=KNOB_DEFAULTS)
