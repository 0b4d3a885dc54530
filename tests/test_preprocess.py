"""First-run volume preprocessing: one percentile call (same values as MONAI's transform), a
process pool giving the serial result, absent PET stored as absent, the cache memory-mapped."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from robustmm.data.volumes import load_volume, load_volumes, volume_transform


def _nifti(path: Path, seed: int, shape=(20, 18, 22)) -> Path:
    rng = np.random.default_rng(seed)
    data = rng.gamma(2.0, 1.0, shape).astype(np.float32)
    data[0, 0, :3] = np.nan
    nib.save(nib.Nifti1Image(data, np.diag([1.2, 1.0, 1.1, 1.0])), str(path))
    return path


def test_one_percentile_call_matches_monai_pipeline(tmp_path: Path) -> None:
    path = _nifti(tmp_path / "a.nii.gz", 0)
    ours, nonfinite = load_volume(path, (12, 10, 14), "subject a (MRI)")
    assert nonfinite == 3  # the NaN voxels _nifti plants
    img = nib.load(str(path))
    data = np.asarray(img.dataobj, dtype=np.float32)
    data[~np.isfinite(data)] = 0
    ref = volume_transform((12, 10, 14))(MetaTensor(torch.from_numpy(data), affine=torch.from_numpy(img.affine)))
    ref = torch.as_tensor(ref, dtype=torch.float32)
    assert ours.shape == ref.shape == (1, 12, 10, 14)
    assert float((ours - ref).abs().max()) < 1e-5
    assert float(ours.min()) == -1.0 and float(ours.max()) == 1.0


def test_pool_gives_the_serial_result(tmp_path: Path) -> None:
    paths = [_nifti(tmp_path / f"v{i}.nii.gz", i) for i in range(6)]
    whats = [f"subject {i} (MRI)" for i in range(6)]
    serial, serial_nonfinite = load_volumes(paths, (8, 8, 8), whats, workers=1)
    pooled, pooled_nonfinite = load_volumes(paths, (8, 8, 8), whats, workers=2)
    assert pooled.shape == serial.shape == (6, 1, 8, 8, 8)
    assert torch.equal(serial, pooled) and serial_nonfinite == pooled_nonfinite == [3] * 6
    assert torch.equal(serial[3], load_volume(paths[3], (8, 8, 8), "x")[0])


def test_pool_reports_a_bad_file_by_subject(tmp_path: Path) -> None:
    from robustmm.errors import DataError

    paths = [_nifti(tmp_path / f"v{i}.nii.gz", i) for i in range(4)]
    bad = tmp_path / "broken.nii.gz"
    bad.write_bytes(b"not a nifti")
    with pytest.raises(DataError, match="subject s4 .*corrupt"):
        load_volumes(paths + [bad], (8, 8, 8), [f"subject s{i} (PET)" for i in range(5)], workers=2)


def test_absent_pet_is_not_stored_and_cache_is_memory_mapped(tiny_adni_root: Path, tmp_path: Path) -> None:
    import shutil

    from robustmm.config.schema import AdniDataConfig
    from robustmm.data.adni import AdniDataset

    root = tmp_path / "cohort"
    shutil.copytree(tiny_adni_root, root, ignore=shutil.ignore_patterns(".robustmm_cache"))
    cfg = AdniDataConfig(root=root, volume_shape=(8, 8, 8), preprocess_workers=2)
    first = AdniDataset(cfg, progress=False)
    n, n_pet = len(first), int(first.has_pet.sum())
    assert 0 < n_pet < n
    assert first.pet.shape == (n_pet, 1, 8, 8, 8)  # only subjects with PET
    second = AdniDataset(cfg, progress=False)  # from the cache, memory-mapped
    assert second.pet.shape == first.pet.shape
    assert torch.equal(second.mri, first.mri) and torch.equal(second.pet, first.pet)
    maps = Path("/proc/self/maps")
    if maps.is_file():  # Linux: the cache file is mapped into this process, not read into memory
        assert ".robustmm_cache/volumes_" in maps.read_text()
    second.fit(np.arange(n))
    absent = int(np.flatnonzero(~second.has_pet)[0])
    present = int(np.flatnonzero(second.has_pet)[0])
    s_absent, s_present = second[absent], second[present]
    assert not s_absent["present"]["pet"] and torch.count_nonzero(s_absent["inputs"]["pet"]) == 0
    assert s_present["present"]["pet"] and torch.equal(s_present["inputs"]["pet"], first.pet[first.pet_row[present]])


def test_nan_and_infinite_voxels_set_to_zero_are_noted_in_the_data_report(tiny_adni_root: Path, tmp_path: Path) -> None:
    import shutil

    from robustmm.config.schema import AdniDataConfig
    from robustmm.data.adni import AdniDataset

    root = tmp_path / "cohort"
    shutil.copytree(tiny_adni_root, root, ignore=shutil.ignore_patterns(".robustmm_cache"))
    cfg = AdniDataConfig(root=root, volume_shape=(8, 8, 8), preprocess_workers=1)
    assert not any("NaN" in note for note in AdniDataset(cfg, progress=False).report.notes)
    shutil.rmtree(root / ".robustmm_cache")
    pet = sorted((root / "images").glob("*/*_FDG.nii.gz"))[0]
    img = nib.load(pet)
    data = np.asarray(img.dataobj, dtype=np.float32)
    data[0, 0, :5], data[1, 1, :2] = np.nan, np.inf
    nib.save(nib.Nifti1Image(data, img.affine), pet)
    subject = pet.parent.name
    for ds in (AdniDataset(cfg, progress=False), AdniDataset(cfg, progress=False)):  # computed, then from the cache
        [note] = [n for n in ds.report.notes if "NaN" in n]
        assert note.startswith(f"1 volume had NaN or infinite voxels, set to 0 before scaling (subject {subject} "
                               "(PET): 7)")


def test_reorientation_and_resize_equal_monai_for_flipped_and_permuted_axes() -> None:
    from robustmm.data.volumes import spatial_transform, to_ras_resized

    data = np.random.default_rng(0).random((20, 18, 22)).astype(np.float32)
    affines = [np.diag([1.0, 1.0, 1.0, 1.0]), np.diag([-1.2, 1.0, 1.1, 1.0]),
               np.array([[0, 0, 1.1, 0], [-1.0, 0, 0, 0], [0, 1.2, 0, 0], [0, 0, 0, 1]], float)]
    for affine in affines:
        ref = spatial_transform((12, 10, 14))(MetaTensor(torch.from_numpy(data), affine=torch.from_numpy(affine)))
        ours = to_ras_resized(data, affine, (12, 10, 14))
        np.testing.assert_allclose(ours, torch.as_tensor(ref).numpy(), atol=1e-6)
    # same shape: no resampling
    np.testing.assert_array_equal(to_ras_resized(data, affines[0], (20, 18, 22))[0], data)


def test_a_flipped_axis_of_size_one_is_reoriented() -> None:
    from robustmm.data.volumes import to_ras_resized

    # LPS volume with single-voxel x and y axes: the flipped views had a negative stride torch refused
    data = np.arange(3, dtype=np.float32).reshape(1, 1, 3)
    out = to_ras_resized(data, np.diag([-1.0, -1.0, 1.0, 1.0]), (1, 1, 3))
    np.testing.assert_array_equal(out[0], data)
