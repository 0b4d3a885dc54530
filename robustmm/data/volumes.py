"""Reading and preprocessing NIfTI volumes (nibabel for validation, MONAI for transforms)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import Compose, EnsureChannelFirst, Orientation, Resize, ScaleIntensityRangePercentiles

from robustmm.errors import DataError

PIPELINE_VERSION = "v1"  # bump when the preprocessing changes, so disk caches are rebuilt


def read_nifti(path: Path, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Load a 3-D volume (a trailing singleton 4th axis is accepted). ``what`` names the
    subject and modality for error messages."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{what}: file {path} does not exist; fix the manifest row or the folder pattern")
    try:
        img = nib.load(str(path))
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


def volume_transform(shape: tuple[int, int, int]) -> Compose:
    """RAS orientation, resampling to the study's shape, robust intensity scaling to [-1, 1]."""
    return Compose([
        EnsureChannelFirst(channel_dim="no_channel"),
        Orientation(axcodes="RAS", labels=(("L", "R"), ("P", "A"), ("I", "S"))),
        Resize(spatial_size=shape, mode="trilinear"),
        ScaleIntensityRangePercentiles(lower=1, upper=99, b_min=-1.0, b_max=1.0, clip=True),
    ])


def load_volume(path: Path, shape: tuple[int, int, int], what: str) -> torch.Tensor:
    data, affine = read_nifti(path, what)
    bad = ~np.isfinite(data)
    if bad.all():
        raise DataError(f"{what}: {path} holds no finite values")
    data[bad] = 0.0  # NaN outside the field of view is common in PET
    out = volume_transform(shape)(MetaTensor(torch.from_numpy(data), affine=torch.from_numpy(affine)))
    return torch.as_tensor(out, dtype=torch.float32).contiguous()


def cache_key(paths: list[Path], shape: tuple[int, int, int]) -> str:
    h = hashlib.sha1(f"{PIPELINE_VERSION}|{tuple(shape)}".encode())
    for p in paths:
        st = Path(p).stat()
        h.update(f"|{Path(p).resolve()}|{st.st_size}|{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]
