"""Writing generated PET as NIfTI on the source MRI's grid, for inspection in a viewer.

The generator works at the study's ``data.volume_shape`` in RAS orientation (the preprocessing of
``robustmm.data.volumes``: reorient to RAS, resize, scale intensities to [-1, 1]). To put the
generated volume back on the grid of the MRI it came from, the MRI is preprocessed again with
MONAI, which records the spatial operations it applied (orientation, resize), and those are
inverted on the generated volume: a trilinear resize back to the MRI's voxel grid, then the
original axis order and flips. The file gets the MRI's affine and header (data type float32, no
intensity scaling). Intensities stay in the model's [-1, 1] scale: they are not SUV or counts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import nibabel as nib
import numpy as np
import torch
from monai.data import MetaTensor

from robustmm.data.volumes import read_nifti, volume_transform
from robustmm.errors import DataError
from robustmm.io import replace_synced

DESCRIPTION = b"robustmm generated PET from MRI ([-1,1] model scale)"


def generated_pet_nifti(mri_path: Path, volume_shape: tuple[int, int, int],
                        generate: Callable[[torch.Tensor], torch.Tensor], what: str) -> nib.Nifti1Image:
    """Generate PET from the MRI at ``mri_path`` and return it as an image on that MRI's grid.

    ``generate`` maps a preprocessed MRI batch (1, 1, *volume_shape) to a PET batch of the same shape.
    """
    source = nib.load(str(mri_path))
    data, affine = read_nifti(mri_path, what)
    data = np.where(np.isfinite(data), data, 0.0).astype(np.float32)
    transform = volume_transform(tuple(volume_shape))
    preprocessed = transform(MetaTensor(torch.from_numpy(data), affine=torch.from_numpy(affine)))
    generated = generate(torch.as_tensor(preprocessed).unsqueeze(0).float())[0].detach().cpu().float()
    if tuple(generated.shape) != tuple(preprocessed.shape):
        raise DataError(f"{what}: the generator returned shape {tuple(generated.shape)} for an input of "
                        f"{tuple(preprocessed.shape)}")
    tracked = MetaTensor(generated, meta=preprocessed.meta, applied_operations=preprocessed.applied_operations)
    restored = np.asarray(transform.inverse(tracked))[0].astype(np.float32)
    if restored.size == int(np.prod(source.shape)):
        restored = restored.reshape(source.shape)  # e.g. a trailing singleton 4th axis of the source
    header = source.header.copy()
    header.set_data_dtype(np.float32)
    header.set_slope_inter(1.0, 0.0)
    header["descrip"] = DESCRIPTION
    return nib.Nifti1Image(restored, source.affine, header)


def write_generated_pet(mri_path: Path, out_path: Path, volume_shape: tuple[int, int, int],
                        generate: Callable[[torch.Tensor], torch.Tensor], what: str) -> Path:
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    image = generated_pet_nifti(mri_path, volume_shape, generate, what)
    # nibabel picks the format from the suffix, so the temporary name keeps '.nii.gz'
    tmp = out_path.with_name(f".{out_path.name}.tmp.nii.gz")
    try:
        nib.save(image, str(tmp))
        replace_synced(tmp, out_path)
    finally:
        tmp.unlink(missing_ok=True)
    return out_path
