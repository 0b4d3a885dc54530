"""BraTS multi-sequence MRI segmentation: a folder of case subfolders.

Two on-disk conventions are recognised per case folder:

* BraTS 2018–2020: ``<case>_{flair,t1,t1ce,t2,seg}.nii.gz``; labels {0, 1 necrosis,
  2 oedema, 4 enhancing}.
* BraTS 2023+: ``<case>-{t2f,t1n,t1c,t2w,seg}.nii.gz`` (t2f = FLAIR, t1n = T1, t1c = T1ce,
  t2w = T2); labels {0, 1 necrosis, 2 oedema, 3 enhancing}.

Uncompressed ``.nii`` files are accepted too. The label convention follows the file naming
unless ``label_convention`` overrides it. Labels become three binary channels
[TC, WT, ET] (MONAI's ``ConvertToMultiChannelBasedOnBratsClasses``): tumour core =
necrosis ∪ enhancing, whole tumour = necrosis ∪ oedema ∪ enhancing, enhancing tumour.

Samples follow ``robustmm.data.batch``: ``inputs`` has one (1, D, H, W) tensor per canonical
sequence ``flair, t1ce, t1, t2``; ``target`` is a float (3, D, H, W) tensor; ``meta`` holds the
case id, the affine of the returned voxel grid (after reorientation, crop and resize) and a
``preview`` (an axial slice through the whole tumour's centre and the FLAIR image there, for
report overlays).

``data.kind: brats`` in a study builds :class:`BraTSDataset` with :func:`build_from_config`
(options in :class:`BraTSOptions`; synthetic cases per :class:`BraTSSynthOptions` are written
to ``data.root`` on first use when it does not exist).
"""

from __future__ import annotations

import copy
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Iterator, Literal, Sequence

import nibabel as nib
import numpy as np
import torch
from monai.data import CacheDataset, MetaTensor
from pydantic import ConfigDict, Field, ValidationError
from monai.transforms import (
    CastToTyped,
    Compose,
    ConvertToMultiChannelBasedOnBratsClassesd,
    CropForegroundd,
    MapTransform,
    NormalizeIntensityd,
    Orientationd,
    RandCropByPosNegLabeld,
    RandFlipd,
    RandScaleIntensityd,
    RandShiftIntensityd,
    RandSpatialCropd,
    Resized,
    SpatialPadd,
    Transform,
)
from monai.transforms import LoadImage

from robustmm.config.loader import format_validation_error
from robustmm.config.schema import ConfigModel
from robustmm.data.base import MultimodalDataset, TaskSpec
from robustmm.data.batch import ModalitySpec, all_subsets  # noqa: F401  (re-exported)
from robustmm.data.registry import create_once
from robustmm.errors import ConfigError, DataError
from robustmm.text import form

SEQUENCES: tuple[str, ...] = ("flair", "t1ce", "t1", "t2")
REGIONS: tuple[str, ...] = ("TC", "WT", "ET")

# file-name suffix (before the extension) of each role, per naming convention
NAMING: dict[str, dict[str, str]] = {
    "2018": {"flair": "_flair", "t1ce": "_t1ce", "t1": "_t1", "t2": "_t2", "seg": "_seg"},
    "2023": {"flair": "-t2f", "t1ce": "-t1c", "t1": "-t1n", "t2": "-t2w", "seg": "-seg"},
}
# label value of the enhancing tumour, per convention
ENHANCING_LABEL: dict[str, int] = {"2018": 4, "2023": 3}
NIFTI_EXTENSIONS: tuple[str, ...] = (".nii.gz", ".nii")
AFFINE_ATOL = 1e-3

LabelConvention = Literal["auto", "2018", "2023"]


def allowed_labels(convention: str) -> frozenset[int]:
    """The label values a segmentation file may contain under ``convention``."""
    return frozenset({0, 1, 2, ENHANCING_LABEL[convention]})


# ----------------------------------------------------------------------------- discovery


def _strip_nifti_ext(name: str) -> str | None:
    for ext in NIFTI_EXTENSIONS:
        if name.endswith(ext):
            return name[: -len(ext)]
    return None


def _scan_case_folder(folder: Path) -> tuple[str, str, dict[str, Path]] | None:
    """(case id, naming, role -> file) for one folder, or None when it holds no NIfTI files."""
    stems = {}
    for f in sorted(folder.iterdir()):
        stem = _strip_nifti_ext(f.name) if f.is_file() else None
        if stem in stems:
            raise DataError(f"case folder {folder}: {stems[stem].name} and {f.name} are one file name with two "
                            f"extensions, and they may differ; keep one of them")
        if stem is not None:
            stems[stem] = f
    if not stems:
        return None
    found: dict[str, dict[str, dict[str, Path]]] = {}  # naming -> prefix -> role -> file
    for naming, roles in NAMING.items():
        for stem, path in stems.items():
            for role, suffix in roles.items():
                if stem.endswith(suffix) and len(stem) > len(suffix):
                    found.setdefault(naming, {}).setdefault(stem[: -len(suffix)], {})[role] = path
    if not found:
        raise DataError(
            f"case folder {folder}: NIfTI files {sorted(p.name for p in stems.values())} follow neither BraTS "
            f"naming (2018–2020: <case>_flair/_t1/_t1ce/_t2/_seg.nii.gz; 2023: <case>-t2f/-t1n/-t1c/-t2w/-seg.nii.gz); "
            f"rename the files or move them out of {folder.parent}"
        )
    if len(found) > 1:
        raise DataError(
            f"case folder {folder}: mixes BraTS 2018–2020 (_flair, _t1ce, ...) and 2023 (-t2f, -t1c, ...) file names; "
            f"keep one convention per case"
        )
    naming, by_prefix = next(iter(found.items()))
    if len(by_prefix) > 1:
        # prefer the folder name when several prefixes match (e.g. stray copies)
        if folder.name in by_prefix:
            by_prefix = {folder.name: by_prefix[folder.name]}
        else:
            raise DataError(
                f"case folder {folder}: files belong to several cases {sorted(by_prefix)}; put each case in its own folder"
            )
    case_id, files = next(iter(by_prefix.items()))
    return case_id, naming, files


def _expected_name(case_id: str, naming: str, role: str, files: dict[str, Path]) -> str:
    """The missing file's name, with the extension the case's other files use (.nii.gz when they mix)."""
    extensions = {next(e for e in NIFTI_EXTENSIONS if p.name.endswith(e)) for p in files.values()}
    ext = extensions.pop() if len(extensions) == 1 else ".nii.gz"
    return f"{case_id}{NAMING[naming][role]}{ext}"


def _read_header(path: Path, case_id: str) -> tuple[tuple[int, ...], np.ndarray]:
    """Shape and affine of a NIfTI file, without reading its voxels."""
    try:
        img = nib.load(str(path))
        shape = tuple(int(s) for s in img.shape)
        affine = np.asarray(img.affine, dtype=np.float64)
    except Exception as exc:  # nibabel raises many types for damaged headers
        raise DataError(
            f"case {case_id}: cannot read {path.name} ({path}): {type(exc).__name__}: {exc}. "
            f"The file is corrupt or not NIfTI; re-download or re-export it"
        ) from exc
    if len(shape) == 4 and shape[-1] == 1:  # a 3-D volume saved with a singleton 4th axis, as read_nifti accepts
        shape = shape[:3]
    if len(shape) != 3:
        raise DataError(
            f"case {case_id}: {path.name} ({path}) has shape {shape}, expected a 3-D volume; "
            f"split 4-D files into one 3-D NIfTI per sequence"
        )
    return shape, affine


def _no_cases(root: Path) -> DataError:
    return DataError(f"no BraTS cases under {root}: expected subfolders like <case>/<case>_flair.nii.gz (2018–2020) "
                     "or <case>/<case>-t2f.nii.gz (2023) ('robustmm data check brats ROOT' reads a folder as a study "
                     "would; 'robustmm data synth brats --out ROOT' writes synthetic cases in this layout)")


def check_root(cfg: Any) -> None:
    """The folder data.root holds a BraTS case (robustmm.data.registry.check_data_root: before a run folder is
    made); only file names are read here, the loader checks every file."""
    root = Path(cfg.root)
    if not any(_scan_case_folder(folder) is not None for folder in case_folders(root)):
        raise _no_cases(root)


def case_folders(root: Path) -> list[Path]:
    """The subfolders of a BraTS root that may hold a case (hidden ones skipped), sorted."""
    if not Path(root).is_dir():
        raise DataError(f"BraTS root {root} is not a folder; point it at the folder holding one subfolder per case "
                        f"('robustmm data synth brats --out ROOT' writes synthetic cases in that layout)")
    return sorted(p for p in Path(root).iterdir() if p.is_dir() and not p.name.startswith("."))


def check_case(case_id: str, folder: Path, naming: str, files: dict[str, Path], *,
               label_convention: LabelConvention = "auto", allow_missing_sequences: bool = False) -> dict[str, Any]:
    """One case's record (file paths, label convention) after checking its names and headers."""
    if "seg" not in files:
        raise DataError(
            f"case {case_id}: segmentation file {_expected_name(case_id, naming, 'seg', files)} is missing in "
            f"{folder}; add it (unlabelled cases are not supported)"
        )
    missing = [s for s in SEQUENCES if s not in files]
    if missing and not allow_missing_sequences:
        names = [_expected_name(case_id, naming, s, files) for s in missing]
        them = form(len(names), "it", "them")
        raise DataError(
            f"case {case_id}: missing sequence {form(len(names), 'file')} {names} in {folder}; add {them}, remove the "
            f"case, or treat {them} as naturally missing (study: data.options.allow_missing_sequences: true; robustmm "
            f"data check brats: --allow-missing-sequences)"
        )
    if len(missing) == len(SEQUENCES):
        raise DataError(f"case {case_id}: no sequence file in {folder}, only the segmentation; remove the case")
    convention = naming if label_convention == "auto" else label_convention
    ref_role = next(s for s in SEQUENCES if s in files)
    ref_shape, ref_affine = _read_header(files[ref_role], case_id)
    for role in [*SEQUENCES, "seg"]:
        if role not in files or role == ref_role:
            continue
        shape, affine = _read_header(files[role], case_id)
        if shape != ref_shape:
            raise DataError(
                f"case {case_id}: {files[role].name} has shape {shape} but {files[ref_role].name} has {ref_shape}; "
                f"all sequences and the segmentation of a case must be co-registered on one grid (resample them)"
            )
        if not np.allclose(affine, ref_affine, atol=AFFINE_ATOL):
            raise DataError(
                f"case {case_id}: affine of {files[role].name} differs from {files[ref_role].name} "
                f"(max abs difference {np.abs(affine - ref_affine).max():.4g} > {AFFINE_ATOL}); "
                f"co-register / resample the sequences onto one grid"
            )
    record: dict[str, Any] = {
        "case": case_id,
        "convention": convention,
        "et_label": ENHANCING_LABEL[convention],
        "label": str(files["seg"]),
    }
    record.update({s: str(files[s]) for s in SEQUENCES if s in files})
    return record


def check_cases(root: str | Path, *, label_convention: LabelConvention = "auto",
                allow_missing_sequences: bool = False, progress: bool = True
                ) -> Iterator[tuple[str, dict[str, Any] | None, list[str]]]:
    """Every case folder under ``root`` read in full, one case at a time (memory: one volume):
    names and headers, the segmentation's label values, every sequence's voxels. Yields
    (case or folder name, record or None when the names/headers are unusable, problems)."""
    from tqdm.auto import tqdm

    loader = LoadBraTSCased()
    seen: dict[str, Path] = {}
    found = 0  # folders holding NIfTI files
    for folder in tqdm(case_folders(Path(root)), desc="checking BraTS cases", unit="case", disable=not progress):
        try:
            scanned = _scan_case_folder(folder)
            if scanned is None:
                continue
            case_id, naming, files = scanned
            if case_id in seen:
                raise DataError(f"case {case_id} appears in two folders ({seen[case_id]} and {folder}); keep one copy")
            seen[case_id] = folder
            record = check_case(case_id, folder, naming, files, label_convention=label_convention,
                                allow_missing_sequences=allow_missing_sequences)
        except DataError as exc:
            found += 1
            yield folder.name, None, [str(exc)]
            continue
        found += 1
        problems = []
        for role in ("label", *SEQUENCES):
            if role not in record:
                continue
            try:
                if role == "label":
                    loader.read_label(record)
                else:
                    loader.read_sequence(record[role], case_id)
            except DataError as exc:
                problems.append(str(exc))
        yield case_id, record, problems
    if not found:
        raise _no_cases(Path(root))


# ----------------------------------------------------------------------------- transforms


class LoadBraTSCased(MapTransform):
    """Load the sequences and segmentation of one case record, check them, fill absent ones.

    Input record keys: ``case``, ``et_label``, ``convention``, one key per present sequence and
    ``label`` (file paths). Output: ``image`` (4, D, H, W) MetaTensor in :data:`SEQUENCES`
    order (absent sequences are zeros), ``label`` (1, D, H, W) with enhancing remapped to 4 so
    that one ``ConvertToMultiChannelBasedOnBratsClassesd`` serves both conventions.
    """

    def __init__(self) -> None:
        super().__init__(keys=[*SEQUENCES, "label"], allow_missing_keys=True)
        self._loader = LoadImage(reader="NibabelReader", image_only=True, ensure_channel_first=True, dtype=np.float32)

    def _load(self, path: str, case_id: str) -> MetaTensor:
        name = Path(path).name
        try:
            img = self._loader(path)
        except Exception as exc:
            raise DataError(
                f"case {case_id}: cannot read voxels of {name} ({path}): {type(exc).__name__}: {exc}. "
                f"The file is corrupt or truncated; re-download or re-export it"
            ) from exc
        if img.ndim != 4 or img.shape[0] != 1:
            raise DataError(f"case {case_id}: {name} ({path}) has shape {tuple(img.shape[1:])}, expected a 3-D volume")
        return img

    def read_label(self, record: dict[str, Any]) -> MetaTensor:
        """The case's segmentation, its label values checked against the record's convention."""
        case_id, seg_path = record["case"], record["label"]
        label = self._load(seg_path, case_id)
        values = torch.unique(label.as_tensor())
        allowed = allowed_labels(record["convention"])
        bad = sorted({float(v) for v in values.tolist()} - {float(a) for a in allowed})
        if bad:
            shown = [int(v) if float(v).is_integer() else v for v in bad]
            other = "2023" if record["convention"] == "2018" else "2018"
            fix = f"fix the file (allowed values: {sorted(allowed)})"
            if shown == [ENHANCING_LABEL[other]]:  # only the other convention's enhancing label: it may be that
                fix += (f", or, if it uses the BraTS {other} convention (enhancing = {ENHANCING_LABEL[other]}), set "
                        f"data.options.label_convention: '{other}' in the study (robustmm data check brats: "
                        f"--label-convention {other})")
            raise DataError(
                f"case {case_id}: {Path(seg_path).name} ({seg_path}) has label values {shown} outside the BraTS "
                f"{record['convention']} convention {sorted(allowed)}; {fix}"
            )
        return label

    def read_sequence(self, path: str, case_id: str) -> MetaTensor:
        """One sequence's voxels, refused when any is NaN or infinite."""
        img = self._load(path, case_id)
        if not torch.isfinite(img.as_tensor()).all():
            raise DataError(
                f"case {case_id}: {Path(path).name} ({path}) contains NaN or infinite voxels; fix or re-export the file"
            )
        return img

    def __call__(self, data: dict[str, Any]) -> dict[str, Any]:
        d = dict(data)
        case_id = d["case"]
        label = self.read_label(d)
        if d["et_label"] != 4:
            # 2023 files: move enhancing to 4 so the 2018 region transform applies unchanged
            label = torch.where(label == d["et_label"], torch.full_like(label, 4.0), label)
        channels = []
        for seq in SEQUENCES:
            if seq in d:
                channels.append(self.read_sequence(d[seq], case_id))
                del d[seq]
            else:
                channels.append(MetaTensor(torch.zeros_like(label.as_tensor()), affine=label.affine.clone()))
        # every sequence shares the segmentation's grid (checked on the headers), so its meta fits
        meta = dict(label.meta)
        meta["filename_or_obj"] = case_id
        image = MetaTensor(torch.cat([c.as_tensor() for c in channels], dim=0), meta=meta)
        d["image"] = image
        d["label"] = label
        return d


def eval_transforms(
    spatial_size: Sequence[int] | None = None,
    *,
    crop_foreground: bool = True,
    normalize: bool = True,
) -> Compose:
    """The deterministic preprocessing of a case record (what :class:`BraTSDataset` caches).

    load → check → labels to [TC, WT, ET] → orientation RAS → crop to the foreground of the
    stacked sequences → per-sequence z-score over non-zero voxels → optional resize to
    ``spatial_size`` (trilinear for images, nearest for labels).
    """
    keys = ["image", "label"]
    t: list[Transform] = [
        LoadBraTSCased(),
        ConvertToMultiChannelBasedOnBratsClassesd(keys="label"),
        CastToTyped(keys="label", dtype=torch.float32),
        Orientationd(keys=keys, axcodes="RAS", labels=(("L", "R"), ("P", "A"), ("I", "S"))),
    ]
    if crop_foreground:
        t.append(CropForegroundd(keys=keys, source_key="image", allow_smaller=True))
    if normalize:
        t.append(NormalizeIntensityd(keys="image", nonzero=True, channel_wise=True))
    if spatial_size is not None:
        size = tuple(int(s) for s in spatial_size)
        t.append(Resized(keys="image", spatial_size=size, mode="trilinear"))
        t.append(Resized(keys="label", spatial_size=size, mode="nearest"))
    return Compose(t)


def train_transforms(
    roi_size: Sequence[int],
    *,
    pos_neg: bool = False,
    augment: bool = True,
) -> Compose:
    """Random part applied on top of :func:`eval_transforms` for training.

    Pads to ``roi_size`` where needed, then crops ``roi_size`` either uniformly at random
    (``RandSpatialCropd``) or centred on tumour/background with equal odds
    (``RandCropByPosNegLabeld``, ``pos_neg=True``); ``augment`` adds flips and small
    intensity scale/shift.
    """
    keys = ["image", "label"]
    roi = tuple(int(s) for s in roi_size)
    t: list[Transform] = [SpatialPadd(keys=keys, spatial_size=roi)]
    if pos_neg:
        t.append(
            RandCropByPosNegLabeld(
                keys=keys, label_key="label", spatial_size=roi, pos=1.0, neg=1.0, num_samples=1,
                image_key="image", image_threshold=0.0, allow_smaller=True,
            )
        )
    else:
        t.append(RandSpatialCropd(keys=keys, roi_size=roi, random_size=False))
    if augment:
        t += [RandFlipd(keys=keys, prob=0.5, spatial_axis=axis) for axis in range(3)]
        t += [
            RandScaleIntensityd(keys="image", factors=0.1, prob=1.0),
            RandShiftIntensityd(keys="image", offsets=0.1, prob=1.0),
        ]
    return Compose(t)


# ----------------------------------------------------------------------------- dataset


@contextmanager
def _surface_data_errors() -> Iterator[None]:
    """Re-raise a DataError that MONAI's Compose wrapped in RuntimeError("applying transform")."""
    try:
        yield
    except DataError:
        raise
    except Exception as exc:
        cause: BaseException | None = exc
        while cause is not None and not isinstance(cause, DataError):
            cause = cause.__cause__ or cause.__context__
        if cause is None:
            raise
        raise cause from None


class BraTSDataset(MultimodalDataset):
    """BraTS cases under ``root`` (one subfolder per case), cached after preprocessing.

    Args:
        root: folder whose subfolders are cases.
        cases: restrict to these case ids (in this order).
        label_convention: "auto" (from the file naming), "2018" (enhancing = 4) or
            "2023" (enhancing = 3).
        spatial_size: resize every case to this (D, H, W) after cropping; needed to batch
            cases of different size without ``roi_size``.
        roi_size: when given, reads of training items return a random ``roi_size`` crop. Every
            item is a training item until :meth:`fit` names the training split; then the
            other items are read whole (for sliding-window evaluation).
        pos_neg: with ``roi_size``, crop around tumour/background with equal odds.
        augment: with ``roi_size``, add random flips and intensity scale/shift.
        crop_foreground, normalize: switch those preprocessing steps off (e.g. to compare
            with raw files).
        allow_missing_sequences: a case lacking a sequence file gets present=False and zeros
            instead of raising DataError.
        common_shape: without ``spatial_size``, zero-pad every whole-volume read to the
            largest case (per axis) so cases of different size batch together.
        cache_rate, cache_workers: passed to MONAI's CacheDataset.
        seed: random state of the training crops.
    """

    def __init__(
        self,
        root: str | Path,
        *,
        cases: Sequence[str] | None = None,
        label_convention: LabelConvention = "auto",
        spatial_size: Sequence[int] | None = None,
        roi_size: Sequence[int] | None = None,
        pos_neg: bool = False,
        augment: bool = True,
        crop_foreground: bool = True,
        normalize: bool = True,
        allow_missing_sequences: bool = False,
        common_shape: bool = False,
        cache_rate: float = 1.0,
        cache_workers: int = 1,
        seed: int = 0,
    ) -> None:
        self.root = Path(root)
        if label_convention not in ("auto", "2018", "2023"):
            raise DataError(f"label_convention must be 'auto', '2018' or '2023', got {label_convention!r}")
        for name, size in (("spatial_size", spatial_size), ("roi_size", roi_size)):
            if size is not None and (len(size) != 3 or any(int(s) < 1 for s in size)):
                raise DataError(f"{name} must be three positive integers (D, H, W), got {size!r}")
        self.label_convention = label_convention
        self.allow_missing_sequences = allow_missing_sequences
        self.records = self._discover(cases)
        self._present = {s: np.array([s in r for r in self.records], dtype=bool) for s in SEQUENCES}

        # the deterministic part is cached; training crops are drawn from a copy of the cached case
        with _surface_data_errors():
            self._ds = CacheDataset(
                data=self.records, transform=eval_transforms(spatial_size, crop_foreground=crop_foreground, normalize=normalize),
                cache_rate=cache_rate, num_workers=cache_workers, progress=False,
            )
        self._crop: Compose | None = None
        if roi_size is not None:
            self._crop = train_transforms(roi_size, pos_neg=pos_neg, augment=augment)
            self._crop.set_random_state(seed=seed)
        self._train_items: frozenset[int] | None = None
        self._pad: SpatialPadd | None = None
        if spatial_size is None and common_shape:
            shapes = np.array([self._ds[i]["image"].shape[1:] for i in range(len(self.records))])
            self._pad = SpatialPadd(keys=["image", "label"], spatial_size=tuple(int(s) for s in shapes.max(axis=0)))

        if roi_size is not None:
            shape = tuple(int(s) for s in roi_size)
        elif spatial_size is not None:
            shape = tuple(int(s) for s in spatial_size)
        else:
            shape = tuple(int(s) for s in self._item(0)["image"].shape[1:])
        self.modalities = {s: ModalitySpec(name=s, kind="volume", shape=(1, *shape)) for s in SEQUENCES}
        self.task = TaskSpec("segmentation", num_classes=3, class_names=REGIONS)

    # -- discovery and header checks (no voxel reads)

    def _discover(self, cases: Sequence[str] | None) -> list[dict[str, Any]]:
        found: dict[str, tuple[Path, str, dict[str, Path]]] = {}
        for folder in case_folders(self.root):
            scanned = _scan_case_folder(folder)
            if scanned is None:
                continue
            case_id, naming, files = scanned
            if case_id in found:
                raise DataError(
                    f"case {case_id} appears in two folders ({found[case_id][0]} and {folder}); keep one copy"
                )
            found[case_id] = (folder, naming, files)
        if not found:
            raise _no_cases(self.root)
        if cases is not None:
            unknown = [c for c in cases if c not in found]
            if unknown:
                raise DataError(f"cases {unknown} not found under {self.root}; available: {sorted(found)[:10]} ...")
            repeated = sorted({c for c in cases if list(cases).count(c) > 1})
            if repeated:
                raise DataError(f"cases {repeated} are listed more than once in data.options.cases; list each "
                                "case once (a repeated case would count twice in training and evaluation)")
            ids = list(cases)
        else:
            ids = sorted(found)
        return [check_case(c, *found[c], label_convention=self.label_convention,
                           allow_missing_sequences=self.allow_missing_sequences) for c in ids]

    # -- Dataset API

    def __len__(self) -> int:
        return len(self.records)

    def fit(self, train_indices: Sequence[int]) -> None:
        """Only these items are training items (random crops with ``roi_size``); the others
        are read whole. Called by the DataModule with its training split."""
        self._train_items = frozenset(int(i) for i in train_indices)

    def _is_training_read(self, index: int) -> bool:
        return self._crop is not None and (self._train_items is None or index in self._train_items)

    def _item(self, index: int) -> dict[str, Any]:
        with _surface_data_errors():
            item = self._ds[index]
        if self._is_training_read(index):
            item = self._crop(copy.deepcopy(item))
            if isinstance(item, list):  # RandCropByPosNegLabeld returns a list of num_samples crops
                item = item[0]
        elif self._pad is not None:
            item = self._pad(item)
        return item

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = self._item(index)
        image: MetaTensor = item["image"]
        record = self.records[index]
        pixels = image.as_tensor().float()
        inputs = {s: pixels[i : i + 1].contiguous() for i, s in enumerate(SEQUENCES)}
        present = {s: s in record for s in SEQUENCES}
        label = item["label"]
        target = (label.as_tensor() if isinstance(label, MetaTensor) else torch.as_tensor(label)).float().contiguous()
        affine = image.affine.detach().cpu().numpy().astype(float).tolist()
        return {
            "inputs": inputs,
            "present": present,
            "target": target,
            "meta": {"subject": record["case"], "affine": affine, "preview": _preview(pixels, target, record)},
        }

    def subject_ids(self) -> list[str]:
        return [r["case"] for r in self.records]

    def natural_presence(self) -> dict[str, np.ndarray]:
        return {s: v.copy() for s, v in self._present.items()}

    def label_conventions(self) -> list[str]:
        """The label convention ("2018" or "2023") used for each case."""
        return [r["convention"] for r in self.records]


def _preview(pixels: torch.Tensor, target: torch.Tensor, record: dict[str, Any]) -> dict[str, Any]:
    """The axial slice through the centre of the whole tumour (the middle one without tumour)
    and the FLAIR image there (the first present sequence when FLAIR is absent)."""
    slices = torch.nonzero(target[REGIONS.index("WT")].flatten(0, 1).any(dim=0)).flatten()
    z = int(torch.round(slices.float().mean())) if len(slices) else target.shape[-1] // 2
    channel = next(i for i, s in enumerate(SEQUENCES) if s in record)
    return {"slice": z, "image": pixels[channel, :, :, z].numpy().astype(np.float16)}


# ----------------------------------------------------------------------------- study builder


class BraTSOptions(ConfigModel):
    """``data.options`` of ``data.kind: brats`` (see :class:`BraTSDataset` for their meaning).

    ``pos_neg`` defaults to True here: tumour-centred training crops half of the time, since
    tumour is a small fraction of a brain.
    """

    model_config = ConfigDict(extra="forbid")

    cases: list[str] | None = None
    label_convention: LabelConvention = "auto"
    spatial_size: tuple[int, int, int] | None = None
    roi_size: tuple[int, int, int] | None = None
    pos_neg: bool = True
    augment: bool = True
    crop_foreground: bool = True
    allow_missing_sequences: bool = False
    cache_rate: float = Field(1.0, ge=0.0, le=1.0)
    seed: int = 0


class BraTSSynthOptions(ConfigModel):
    """``data.synthetic`` of ``data.kind: brats``: what :func:`write_synthetic_brats` writes."""

    model_config = ConfigDict(extra="forbid")

    cases: int = Field(40, ge=4)
    #: at least 8 voxels per axis: the generator's brain, tumour and bias field need that room
    shape: tuple[Annotated[int, Field(ge=8)], Annotated[int, Field(ge=8)], Annotated[int, Field(ge=8)]] = (40, 40, 40)
    seed: int = Field(0, ge=0)  # numpy's generators refuse negative seeds
    naming: Literal["2018", "2023"] = "2018"
    #: mechanism knob (robustmm.data.synth.brats): the sequences that show each tumour region,
    #: e.g. {oedema: [flair], enhancing: [t1ce], necrosis: [t1ce]}; unnamed regions keep the default
    visible_in: dict[Literal["oedema", "enhancing", "necrosis"], list[Literal["flair", "t1ce", "t1", "t2"]]] = Field(
        default_factory=dict)


def check_synthetic(cfg: Any) -> None:
    """Refuse synthetic cases written with other generator arguments; also run by
    robustmm.data.registry.check_data_root, before a run folder is made."""
    from robustmm.data.registry import check_synthetic_matches

    try:
        synth = BraTSSynthOptions.model_validate(cfg.synthetic)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, BraTSSynthOptions, "study", prefix="data.synthetic")) from None
    check_synthetic_matches(Path(cfg.root), {"n_cases": synth.cases, "shape": list(synth.shape), "seed": synth.seed,
                                             "naming": synth.naming,
                                             "visible_in": {k: list(v) for k, v in synth.visible_in.items()}},
                            defaults={"visible_in": {}})


def build_from_config(cfg: Any, progress: bool = True) -> BraTSDataset:
    """``data.kind: brats``: the BraTS folder ``data.root`` (one subfolder per case), written
    first from ``data.synthetic`` when the folder does not exist."""
    from robustmm.data.synth.brats import write_synthetic_brats  # imports this module

    try:
        options = BraTSOptions.model_validate(cfg.options)
        synth = None if cfg.synthetic is None else BraTSSynthOptions.model_validate(cfg.synthetic)
    except ValidationError as err:
        model, prefix = ((BraTSOptions, "data.options") if err.title == BraTSOptions.__name__
                         else (BraTSSynthOptions, "data.synthetic"))
        raise ConfigError(format_validation_error(err, model, "study", prefix=prefix)) from None
    root = Path(cfg.root)
    if not root.exists():
        if synth is None:
            raise DataError(f"data.root {root} does not exist; point it at a BraTS folder (one subfolder per case) "
                            f"or add data.synthetic (e.g. {{cases: 40}}) to generate synthetic cases there")
        create_once(root, lambda out: write_synthetic_brats(out, synth.cases, synth.shape, synth.seed, synth.naming,
                                                            visible_in=dict(synth.visible_in)))
    if synth is not None:
        check_synthetic(cfg)
    return BraTSDataset(root, **options.model_dump(), common_shape=True)
