"""Reading and preprocessing NIfTI volumes (nibabel for validation, MONAI for transforms)."""

from __future__ import annotations

import hashlib
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
from monai.transforms import Compose, EnsureChannelFirst, Orientation, Resize, ScaleIntensityRangePercentiles

from robustmm.errors import DataError

PIPELINE_VERSION = "v3"  # bump when the preprocessing changes, so disk caches are rebuilt
# v2: one percentile call per volume (same formula as MONAI's ScaleIntensityRangePercentiles),
#     absent PET stored as absent, cache loaded memory-mapped


def read_nifti(path: Path, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Load a 3-D volume (a trailing singleton 4th axis is accepted). ``what`` names the
    subject and modality for error messages."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{what}: file {path} does not exist; fix the manifest row or the folder pattern")
    try:
        img = _load_image(path)
        data = np.asarray(img.dataobj, dtype=np.float32)
    except Exception as exc:  # nibabel raises many types for corrupt/truncated files
        raise DataError(f"{what}: cannot read NIfTI {path} ({type(exc).__name__}: {exc}); "
                        "the file is corrupt or truncated: re-export or re-download it") from None
    if data.ndim == 4 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise DataError(f"{what}: {path} has shape {data.shape}; expected a 3-D volume (one T1 or one "
                        "static PET frame). Average or select the frame before loading")
    return data, np.asarray(img.affine, dtype=np.float64)


def _load_image(path: Path):
    """A gzipped NIfTI-1 file decompressed in one call (faster than nibabel's gzip stream);
    anything else (NIfTI-2, plain .nii, a corrupt file) through ``nib.load``."""
    if path.name.endswith(".gz"):
        try:
            return nib.Nifti1Image.from_bytes(zlib.decompress(path.read_bytes(), 31))
        except Exception:  # not NIfTI-1, or damaged: nib.load reports it
            pass
    return nib.load(str(path))


def volume_transform(shape: tuple[int, int, int]) -> Compose:
    """RAS orientation, resampling to the study's shape, robust intensity scaling to [-1, 1]."""
    return Compose([
        EnsureChannelFirst(channel_dim="no_channel"),
        Orientation(axcodes="RAS", labels=(("L", "R"), ("P", "A"), ("I", "S"))),
        Resize(spatial_size=shape, mode="trilinear"),
        ScaleIntensityRangePercentiles(lower=1, upper=99, b_min=-1.0, b_max=1.0, clip=True),
    ])


def spatial_transform(shape: tuple[int, int, int]) -> Compose:
    """RAS orientation and resampling to the study's shape (the first steps of :func:`volume_transform`)."""
    return Compose([
        EnsureChannelFirst(channel_dim="no_channel"),
        Orientation(axcodes="RAS", labels=(("L", "R"), ("P", "A"), ("I", "S"))),
        Resize(spatial_size=shape, mode="trilinear"),
    ])


def scale_percentiles(x: np.ndarray, lower: float = 1.0, upper: float = 99.0) -> np.ndarray:
    """MONAI's ``ScaleIntensityRangePercentiles(lower, upper, b_min=-1, b_max=1, clip=True)`` with
    both percentiles from one partial sort."""
    a_min, a_max = (float(v) for v in np.percentile(x, [lower, upper]))
    if a_max - a_min == 0.0:
        return (x - a_min + -1.0).astype(np.float32)
    out = (x - a_min) / (a_max - a_min) * 2.0 + -1.0
    return np.clip(out, -1.0, 1.0).astype(np.float32)


def load_volume(path: Path, shape: tuple[int, int, int], what: str) -> tuple[torch.Tensor, int]:
    """The preprocessed (1, *shape) volume and how many of the file's voxels were NaN or infinite (set to 0)."""
    data, affine = read_nifti(path, what)
    bad = ~np.isfinite(data)
    if bad.all():
        raise DataError(f"{what}: {path} holds no finite values")
    data[bad] = 0.0  # NaN outside the field of view is common in PET; counted, so the data report can say so
    return torch.from_numpy(scale_percentiles(to_ras_resized(data, affine, shape))).contiguous(), int(bad.sum())


def to_ras_resized(data: np.ndarray, affine: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """:func:`spatial_transform` without MONAI's metadata bookkeeping: nibabel's reorientation to
    RAS (the transform MONAI's ``Orientation`` applies) and trilinear resizing as MONAI's ``Resize``
    does it (``interpolate``, ``align_corners=False``, no anti-aliasing); (1, *shape) float32."""
    ornt = nib.orientations.ornt_transform(nib.io_orientation(affine), nib.orientations.axcodes2ornt("RAS"))
    # a fresh C-order copy: ascontiguousarray keeps a flipped size-1 axis's negative stride, which torch refuses
    x = torch.from_numpy(np.array(nib.orientations.apply_orientation(data, ornt), dtype=np.float32, order="C"))
    if tuple(x.shape) != tuple(shape):
        x = torch.nn.functional.interpolate(x[None, None], size=tuple(shape), mode="trilinear", align_corners=False)[0, 0]
    return x[None].numpy()


_OUT: torch.Tensor | None = None  # the shared output of a forked pool (inherited, written in place)


def _load_into(job: tuple[int, Path, tuple[int, int, int], str]) -> int:
    i, path, shape, what = job
    _OUT[i], nonfinite = load_volume(path, shape, what)
    return nonfinite


def _load_job(job: tuple[int, Path, tuple[int, int, int], str]) -> tuple[np.ndarray, int]:
    _, path, shape, what = job
    volume, nonfinite = load_volume(path, shape, what)
    return volume.numpy(), nonfinite


def _init_worker() -> None:
    torch.set_num_threads(1)


def load_volumes(paths: list[Path], shape: tuple[int, int, int], whats: list[str], workers: int | None = None,
                 progress: bool = False, desc: str = "loading volumes") -> tuple[torch.Tensor, list[int]]:
    """:func:`load_volume` for every path -> ((N, 1, *shape) float32, NaN/infinite voxels per file), in a
    pool of ``workers`` processes (default: the available cores, see :mod:`robustmm.parallel`) that write
    into one shared-memory tensor; ``workers=1`` loads serially in this process."""
    global _OUT
    from tqdm.auto import tqdm

    from robustmm.parallel import default_threads

    jobs = [(i, Path(p), tuple(shape), w) for i, (p, w) in enumerate(zip(paths, whats))]
    out = torch.empty((len(jobs), 1, *shape), dtype=torch.float32)
    workers = min(workers or default_threads(), max(len(jobs), 1))
    nonfinite = [0] * len(jobs)
    if workers <= 1 or len(jobs) < 4:
        for job in tqdm(jobs, desc=desc, disable=not progress, leave=False):
            arr, nonfinite[job[0]] = _load_job(job)
            out[job[0]] = torch.from_numpy(arr)
        return out, nonfinite
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    chunk = max(1, len(jobs) // (workers * 8))
    if torch.cuda.is_initialized():  # fork is unsafe once CUDA runs: spawn, results sent back
        with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=_init_worker) as pool:
            for job, (arr, count) in zip(jobs, tqdm(pool.map(_load_job, jobs, chunksize=chunk), total=len(jobs),
                                                    desc=desc, disable=not progress, leave=False)):
                out[job[0]], nonfinite[job[0]] = torch.from_numpy(arr), count
        return out, nonfinite
    # fork: no re-import; the children inherit the shared tensor and write their volumes into it
    _OUT = out.share_memory_()
    try:
        with ProcessPoolExecutor(workers, mp_context=mp.get_context("fork"), initializer=_init_worker) as pool:
            # map keeps the jobs' order
            nonfinite = list(tqdm(pool.map(_load_into, jobs, chunksize=chunk), total=len(jobs), desc=desc,
                                  disable=not progress, leave=False))
    finally:
        _OUT = None
    return out, nonfinite


def cache_key(paths: list[Path], shape: tuple[int, int, int]) -> str:
    h = hashlib.sha1(f"{PIPELINE_VERSION}|{tuple(shape)}".encode())
    for p in paths:
        st = Path(p).stat()
        h.update(f"|{Path(p).resolve()}|{st.st_size}|{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]
